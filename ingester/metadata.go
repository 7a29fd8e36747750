package ingester

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

// metadataStore keeps, per metric family, the latest metadata a tenant sent.
//
// It lives in memory only: nothing of it survives a restart. Remote-write
// senders resend the metadata of every family periodically (Prometheus every
// minute by default, metadata_config.send_interval), so a restarted ingester
// knows it again within one interval. The TSDB's metadata WAL records are
// per series, which remote-write 1.0 metadata is not; they are left off.
type metadataStore struct {
	mu       sync.RWMutex
	max      int
	families map[string]metricMetadata // guarded by mu
}

type metricMetadata struct {
	typ        remotewrite.MetricType
	help, unit string
}

func (m *metadataStore) init(limit int) {
	m.max = limit
	m.families = map[string]metricMetadata{}
}

// update records md and reports how many entries changed and how many were
// dropped because the tenant already has the most families allowed. Strings
// are cloned only when they change, so the periodic resend of unchanged
// metadata allocates nothing.
func (m *metadataStore) update(md []remotewrite.Metadata) (updated, dropped int) {
	if len(md) == 0 {
		return 0, 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range md {
		in := &md[k]
		if in.FamilyName == "" {
			continue
		}
		cur, ok := m.families[in.FamilyName]
		if ok && cur.typ == in.Type && cur.help == in.Help && cur.unit == in.Unit {
			continue
		}
		if !ok && len(m.families) >= m.max {
			dropped++
			continue
		}
		// Cloned even when the family exists: assigning to a string key
		// replaces the stored key with the one given, a view into the body.
		m.families[strings.Clone(in.FamilyName)] = metricMetadata{
			typ:  in.Type,
			help: cloneIfChanged(cur.help, in.Help),
			unit: cloneIfChanged(cur.unit, in.Unit),
		}
		updated++
	}
	return updated, dropped
}

func cloneIfChanged(old, s string) string {
	if old == s {
		return old
	}
	return strings.Clone(s)
}

// list returns the metadata of one family (metric set) or of all, sorted by
// family name, at most limit families (0: no limit).
func (m *metadataStore) list(metric string, limit int) []*ingesterpb.MetricMetadata {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if metric != "" {
		md, ok := m.families[metric]
		if !ok {
			return nil
		}
		return []*ingesterpb.MetricMetadata{md.proto(metric)}
	}
	names := make([]string, 0, len(m.families))
	for name := range m.families {
		names = append(names, name)
	}
	slices.Sort(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make([]*ingesterpb.MetricMetadata, len(names))
	for k, name := range names {
		out[k] = m.families[name].proto(name)
	}
	return out
}

func (md metricMetadata) proto(name string) *ingesterpb.MetricMetadata {
	return &ingesterpb.MetricMetadata{
		Type:             ingesterpb.MetricMetadata_MetricType(md.typ),
		MetricFamilyName: name,
		Help:             md.help,
		Unit:             md.unit,
	}
}

// Metadata returns the latest metadata of a tenant's metric families. The
// ingester keeps one entry per family, so limit_per_metric never cuts.
func (i *Ingester) Metadata(ctx context.Context, r *ingesterpb.MetadataRequest) (*ingesterpb.MetadataResponse, error) {
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return nil, grpcError(err)
	}
	defer i.release()
	if u == nil {
		return &ingesterpb.MetadataResponse{}, nil
	}
	return &ingesterpb.MetadataResponse{Metadata: u.metadata.list(r.GetMetric(), int(r.GetLimit()))}, nil
}
