package ingester

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

// metadataStore keeps, per metric family, the distinct metadata entries
// (type, help, unit) a tenant sent, most recently seen first: two
// exporters that disagree on a family's help both show. A family keeps at
// most perMetric entries (max_metadata_per_metric); a new entry beyond it
// evicts the least recently seen one, so the newest always shows (as in
// Mimir). A tenant keeps at most max families (max_metadata_per_user);
// metadata of a new family beyond it is dropped.
//
// It lives in memory only: nothing of it survives a restart. Remote-write
// senders resend the metadata of every family periodically (Prometheus every
// minute by default, metadata_config.send_interval), so a restarted ingester
// knows it again within one interval. The TSDB's metadata WAL records are
// per series, which remote-write 1.0 metadata is not; they are left off.
type metadataStore struct {
	mu        sync.RWMutex
	max       int                        // families; guarded by mu
	perMetric int                        // entries per family, 0: no limit; guarded by mu
	families  map[string]*metadataFamily // guarded by mu
	// evicted, when set, is called (without mu) with the number of
	// entries one update evicted because their family had perMetric.
	evicted func(n int)
}

// metadataFamily is the entries of one family, most recently seen first.
type metadataFamily struct {
	entries []metricMetadata
}

type metricMetadata struct {
	typ        remotewrite.MetricType
	help, unit string
}

// init sets the store up empty with the limits and the eviction counter.
func (m *metadataStore) init(maxFamilies, perMetric int, evicted func(n int)) {
	m.max = maxFamilies
	m.perMetric = perMetric
	m.families = map[string]*metadataFamily{}
	m.evicted = evicted
}

// setLimits changes the limits. Families over a lowered perMetric lose
// their least recently seen entries now (not counted as evicted: nothing
// was sent); families over a lowered max stay until a restart.
func (m *metadataStore) setLimits(maxFamilies, perMetric int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.max = maxFamilies
	lowered := perMetric > 0 && (m.perMetric == 0 || perMetric < m.perMetric)
	m.perMetric = perMetric
	if !lowered {
		return
	}
	for _, f := range m.families {
		if len(f.entries) > perMetric {
			f.entries = slices.Delete(f.entries, perMetric, len(f.entries))
		}
	}
}

// update records md and reports how many new entries it stored and how
// many it dropped because the tenant already has the most families
// allowed; entries evicted by the per-family limit go to m.evicted. An
// entry the family has already only moves to the front, and strings are
// cloned only for new entries, so the periodic resend of unchanged
// metadata allocates nothing.
func (m *metadataStore) update(md []remotewrite.Metadata) (updated, dropped int) {
	if len(md) == 0 {
		return 0, 0
	}
	evicted := 0
	m.mu.Lock()
	for k := range md {
		in := &md[k]
		if in.FamilyName == "" {
			continue
		}
		f, ok := m.families[in.FamilyName]
		if !ok {
			if len(m.families) >= m.max {
				dropped++
				continue
			}
			m.families[strings.Clone(in.FamilyName)] = &metadataFamily{entries: []metricMetadata{{
				typ:  in.Type,
				help: strings.Clone(in.Help),
				unit: strings.Clone(in.Unit),
			}}}
			updated++
			continue
		}
		if f.seen(in) {
			continue
		}
		evicted += f.add(in, m.perMetric)
		updated++
	}
	m.mu.Unlock()
	if evicted > 0 && m.evicted != nil {
		m.evicted(evicted)
	}
	return updated, dropped
}

// seen reports whether f has in, and if so moves it to the front.
func (f *metadataFamily) seen(in *remotewrite.Metadata) bool {
	for j := range f.entries {
		e := f.entries[j]
		if e.typ == in.Type && e.help == in.Help && e.unit == in.Unit {
			copy(f.entries[1:j+1], f.entries[:j])
			f.entries[0] = e
			return true
		}
	}
	return false
}

// add puts in, which f lacks, at the front, first evicting the least
// recently seen entries while f has perMetric (0: no limit), and returns
// how many it evicted. Strings the family has already are shared.
func (f *metadataFamily) add(in *remotewrite.Metadata, perMetric int) (evicted int) {
	e := metricMetadata{typ: in.Type, help: f.intern(in.Help, true), unit: f.intern(in.Unit, false)}
	if perMetric > 0 && len(f.entries) >= perMetric {
		evicted = len(f.entries) - perMetric + 1
		f.entries = slices.Delete(f.entries, perMetric-1, len(f.entries))
	}
	f.entries = slices.Insert(f.entries, 0, e)
	return evicted
}

// intern returns s, shared with an entry's help (or unit) equal to it when
// there is one, else cloned.
func (f *metadataFamily) intern(s string, help bool) string {
	for _, e := range f.entries {
		if help && e.help == s {
			return e.help
		}
		if !help && e.unit == s {
			return e.unit
		}
	}
	return strings.Clone(s)
}

// list returns the metadata of one family (metric set) or of all, sorted by
// family name and within a family most recently seen first: at most limit
// families and perMetric entries per family (0: no limit).
func (m *metadataStore) list(metric string, limit, perMetric int) []*ingesterpb.MetricMetadata {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if metric != "" {
		f, ok := m.families[metric]
		if !ok {
			return nil
		}
		return f.appendProto(nil, metric, perMetric)
	}
	names := make([]string, 0, len(m.families))
	for name := range m.families {
		names = append(names, name)
	}
	slices.Sort(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	var out []*ingesterpb.MetricMetadata
	for _, name := range names {
		out = m.families[name].appendProto(out, name, perMetric)
	}
	return out
}

func (f *metadataFamily) appendProto(dst []*ingesterpb.MetricMetadata, name string, perMetric int) []*ingesterpb.MetricMetadata {
	entries := f.entries
	if perMetric > 0 && len(entries) > perMetric {
		entries = entries[:perMetric]
	}
	for _, md := range entries {
		dst = append(dst, &ingesterpb.MetricMetadata{
			Type:             ingesterpb.MetricMetadata_MetricType(md.typ),
			MetricFamilyName: name,
			Help:             md.help,
			Unit:             md.unit,
		})
	}
	return dst
}

// reasonMetadataPerMetric is the reason of
// strata_ingester_discarded_metadata_total for entries evicted because
// their family had max_metadata_per_metric entries.
const reasonMetadataPerMetric = "per_metric_metadata_limit"

// countMetadataEvicted counts n metadata entries of tenantID evicted
// because their family had max_metadata_per_metric entries.
func (i *Ingester) countMetadataEvicted(tenantID string, n int) {
	if n <= 0 {
		return
	}
	i.metrics.discardedMetadata.WithLabelValues(i.metrics.tenantLabel(tenantID), reasonMetadataPerMetric).Add(float64(n))
}

// Metadata returns a tenant's metric metadata: every entry the ingester
// keeps of each family, within the request's limit (families) and
// limit_per_metric (entries per family, the most recently seen).
func (i *Ingester) Metadata(ctx context.Context, r *ingesterpb.MetadataRequest) (*ingesterpb.MetadataResponse, error) {
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return nil, grpcError(err)
	}
	defer i.release(u)
	if u == nil {
		return &ingesterpb.MetadataResponse{}, nil
	}
	return &ingesterpb.MetadataResponse{Metadata: u.metadata.list(r.GetMetric(), int(r.GetLimit()), int(r.GetLimitPerMetric()))}, nil
}
