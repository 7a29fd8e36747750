package ingester

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/strata-metrics/strata/limits"
)

// The series limits: max_global_series_per_user and
// max_global_series_per_metric, counted per tenant by each ingester and
// enforced when the head is about to create a series (the TSDB's
// SeriesLifecycleCallback), so that samples of existing series always
// pass. A limit is cluster-wide; each ingester allows its share,
// limits.LocalSeriesLimit(limit, replication factor, ingesters), as Mimir
// does.
//
// A refused series is bad input (HTTP 400 at the distributor), not 429:
// series leave the head only when they have been idle for hours (head
// compaction), so a retry of the same batch a few seconds later would fail
// again, and a 429 would make the sender retry it forever, stalling its
// whole queue. With 400 the sender drops the batch; the samples of the
// tenant's existing series in it are stored all the same.

// RingShare returns the replication factor and the number of ingesters
// that share a tenant's series; a value below 1 counts as 1. It is called
// whenever a new series is checked against a limit and must be cheap and
// goroutine-safe (the ring's cached view, not a network call).
type RingShare func() (replicationFactor, ingesters int)

func (i *Ingester) share() (int, int) {
	if i.ringShare != nil {
		return i.ringShare()
	}
	return 1, 1
}

// seriesLimiter counts one tenant's in-memory series, in all and per
// metric name, and refuses new series over the tenant's limits. It is the
// tenant TSDB's SeriesLifecycleCallback; its methods are goroutine-safe.
type seriesLimiter struct {
	tenant string
	ing    *Ingester
	// enforcing is off while the WAL replays: a series the ingester
	// acknowledged before must come back whatever the limits are now.
	enforcing atomic.Bool

	total     atomic.Int64
	mu        sync.Mutex
	perMetric map[string]int // metric name -> series; entries > 0 only
}

var _ tsdb.SeriesLifecycleCallback = (*seriesLimiter)(nil)

// newSeriesLimiter returns the limiter of tenantID's TSDB, not yet
// enforcing: call enforce once the TSDB is open.
func (i *Ingester) newSeriesLimiter(tenantID string) *seriesLimiter {
	return &seriesLimiter{tenant: tenantID, ing: i, perMetric: map[string]int{}}
}

func (s *seriesLimiter) enforce() { s.enforcing.Store(true) }

// PreCreation refuses lset when the tenant is at one of its series limits.
func (s *seriesLimiter) PreCreation(lset labels.Labels) error {
	if !s.enforcing.Load() || s.ing.limits == nil {
		return nil
	}
	lim := s.ing.limits.For(s.tenant)
	if lim.MaxGlobalSeriesPerUser <= 0 && lim.MaxGlobalSeriesPerMetric <= 0 {
		return nil
	}
	rf, n := s.ing.share()
	if lim.MaxGlobalSeriesPerUser > 0 {
		local := limits.LocalSeriesLimit(lim.MaxGlobalSeriesPerUser, rf, n)
		if cur := s.total.Load(); cur >= int64(local) {
			return &seriesLimitError{perMetric: false, tenant: s.tenant, global: lim.MaxGlobalSeriesPerUser, local: local, current: int(cur), rf: rf, ingesters: n}
		}
	}
	if lim.MaxGlobalSeriesPerMetric > 0 {
		local := limits.LocalSeriesLimit(lim.MaxGlobalSeriesPerMetric, rf, n)
		name := lset.Get(labels.MetricName)
		s.mu.Lock()
		cur := s.perMetric[name]
		s.mu.Unlock()
		if cur >= local {
			return &seriesLimitError{perMetric: true, metric: name, tenant: s.tenant, global: lim.MaxGlobalSeriesPerMetric, local: local, current: cur, rf: rf, ingesters: n}
		}
	}
	return nil
}

// PostCreation counts a series the head created.
func (s *seriesLimiter) PostCreation(lset labels.Labels) {
	s.total.Add(1)
	name := lset.Get(labels.MetricName)
	s.mu.Lock()
	if c, ok := s.perMetric[name]; ok {
		s.perMetric[name] = c + 1
	} else {
		s.perMetric[strings.Clone(name)] = 1 // not a view into the series' labels
	}
	s.mu.Unlock()
}

// PostDeletion uncounts series the head garbage-collected.
func (s *seriesLimiter) PostDeletion(deleted map[chunks.HeadSeriesRef]labels.Labels) {
	s.total.Add(-int64(len(deleted)))
	s.mu.Lock()
	for _, lset := range deleted {
		name := lset.Get(labels.MetricName)
		if c := s.perMetric[name]; c <= 1 {
			delete(s.perMetric, name)
		} else {
			s.perMetric[name] = c - 1
		}
	}
	s.mu.Unlock()
}

// seriesCount returns the tenant's series, in all and of metric.
func (s *seriesLimiter) seriesCount(metric string) (total, ofMetric int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.total.Load()), s.perMetric[metric]
}

// seriesLimitError is a new series refused by a series limit.
type seriesLimitError struct {
	perMetric     bool
	metric        string
	tenant        string
	global, local int
	current       int
	rf, ingesters int
}

func (e *seriesLimitError) reason() reason {
	if e.perMetric {
		return reasonMaxSeriesPerMetric
	}
	return reasonMaxSeriesPerUser
}

func (e *seriesLimitError) Error() string {
	what, flag, override := "", limits.FlagMaxGlobalSeriesPerUser, "max_global_series_per_user"
	if e.perMetric {
		what = fmt.Sprintf(" for metric %q", e.metric)
		flag, override = limits.FlagMaxGlobalSeriesPerMetric, "max_global_series_per_metric"
	}
	share := ""
	if e.local != e.global {
		share = fmt.Sprintf("; this ingester's share is %d = %d × replication factor %d / %d ingesters", e.local, e.global, e.rf, e.ingesters)
	}
	return fmt.Sprintf("tenant %q reached its series limit%s: %d series on this ingester (%s=%d across the cluster%s); new series are refused until old ones go idle, samples of existing series are still accepted (-%s, override %q)",
		e.tenant, what, e.current, override, e.global, share, flag, override)
}

// limitMetrics count what the series limits refused, by tenant.
type limitMetrics struct {
	discarded *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	return &limitMetrics{discarded: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "strata_ingester_discarded_samples_total",
		Help: "Samples (float and histogram) refused by a tenant's TSDB or limits, by tenant and reason (the reasons of strata_ingester_samples_rejected_total).",
	}, []string{"tenant", "reason"})}
}
