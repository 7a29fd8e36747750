package bucketindex

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/thanos-io/objstore"
)

// ErrIndexStale: the tenant's index is older than
// -blocks-storage.bucket-index.max-stale-period; the compactor that keeps it
// current is down or failing, and answering from it could miss blocks.
var ErrIndexStale = errors.New("bucket index is stale")

// LoaderConfig is how queriers and store-gateways keep tenants' indexes.
type LoaderConfig struct {
	UpdateInterval           time.Duration `yaml:"update_interval"`
	IdleTimeout              time.Duration `yaml:"idle_timeout"`
	MaxStalePeriod           time.Duration `yaml:"max_stale_period"`
	IgnoreDeletionMarksDelay time.Duration `yaml:"ignore_deletion_marks_delay"`
}

// RegisterFlags registers the loader's flags.
func (c *LoaderConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.UpdateInterval, "blocks-storage.bucket-index.update-interval", 5*time.Minute, "How often a querier or store-gateway reloads the bucket index of each tenant it serves.")
	fs.DurationVar(&c.IdleTimeout, "blocks-storage.bucket-index.idle-timeout", time.Hour, "A tenant's bucket index not used for this long is dropped from memory (and loaded again on its next query).")
	fs.DurationVar(&c.MaxStalePeriod, "blocks-storage.bucket-index.max-stale-period", time.Hour, "A bucket index the compactor last updated longer ago than this fails the queries that need it (the compactor is down: the index may miss blocks). Keep it well above -compactor.cleanup-interval.")
	fs.DurationVar(&c.IgnoreDeletionMarksDelay, "blocks-storage.bucket-index.ignore-deletion-marks-delay", time.Hour, "Blocks marked for deletion are still queried until their mark is this old, so that a query does not miss data while the block that replaces them reaches every querier and store-gateway. Must be well below -compactor.deletion-delay.")
}

// Validate checks the configuration.
func (c *LoaderConfig) Validate() error {
	switch {
	case c.UpdateInterval <= 0:
		return fmt.Errorf("-blocks-storage.bucket-index.update-interval must be positive, got %s", c.UpdateInterval)
	case c.IdleTimeout <= 0:
		return fmt.Errorf("-blocks-storage.bucket-index.idle-timeout must be positive, got %s", c.IdleTimeout)
	case c.MaxStalePeriod <= c.UpdateInterval:
		return fmt.Errorf("-blocks-storage.bucket-index.max-stale-period (%s) must be above -blocks-storage.bucket-index.update-interval (%s)", c.MaxStalePeriod, c.UpdateInterval)
	case c.IgnoreDeletionMarksDelay < 0:
		return fmt.Errorf("-blocks-storage.bucket-index.ignore-deletion-marks-delay must not be negative, got %s", c.IgnoreDeletionMarksDelay)
	}
	return nil
}

// Loader keeps the bucket index of each tenant a process serves: loaded on
// first use, reloaded every UpdateInterval by Run, dropped when idle. It is
// safe for concurrent use; one Loader per process is enough (share it
// between the querier and the store-gateway).
type Loader struct {
	cfg LoaderConfig
	bkt objstore.BucketReader
	log *slog.Logger
	now func() time.Time
	// missingRetry is how often an index found missing is looked for again
	// (defaultMissingRetry; tests shorten it).
	missingRetry time.Duration

	mu      sync.Mutex
	tenants map[string]*entry

	loads    prometheus.Counter
	failures *prometheus.CounterVec
	duration prometheus.Histogram
}

// entry is one tenant's index. mu guards the fields; loadMu serialises
// loads, so that readers keep reading the previous index during a reload.
type entry struct {
	loadMu sync.Mutex

	mu      sync.Mutex
	idx     *Index // the last good index; nil before the first
	missing bool   // the last good load found no index
	err     error  // the last load's error, nil when it succeeded

	lastUsed atomic.Int64 // Unix ns
}

// Failure reasons of strata_bucket_index_load_failures_total.
const (
	reasonCorrupted = "corrupted"
	reasonError     = "error"
)

// NewLoader returns a Loader over bkt (the bucket root). now is the clock
// (time.Now in production).
func NewLoader(cfg LoaderConfig, bkt objstore.BucketReader, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Loader {
	l := &Loader{cfg: cfg, bkt: bkt, log: log, now: now, tenants: map[string]*entry{}, missingRetry: defaultMissingRetry}
	f := promauto.With(reg)
	l.loads = f.NewCounter(prometheus.CounterOpts{
		Name: "strata_bucket_index_loads_total", Help: "Bucket index loads (first use and background reloads).",
	})
	l.failures = f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_bucket_index_load_failures_total", Help: "Bucket index loads that failed, by reason: corrupted (the object cannot be decoded) or error (the bucket failed).",
	}, []string{"reason"})
	l.failures.WithLabelValues(reasonCorrupted)
	l.failures.WithLabelValues(reasonError)
	l.duration = f.NewHistogram(prometheus.HistogramOpts{
		Name: "strata_bucket_index_load_duration_seconds", Help: "Time to load one tenant's bucket index.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 7),
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_bucket_index_loaded_tenants", Help: "Tenants whose bucket index is in memory.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(len(l.tenants))
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_bucket_index_oldest_age_seconds", Help: "Age of the oldest bucket index in memory (now minus when the compactor wrote it); over -blocks-storage.bucket-index.max-stale-period queries of its tenant fail.",
	}, l.oldestAge)
	return l
}

// Index returns tenant's index, loading it on first use. A tenant without
// an index has an empty one (no blocks yet). An index older than
// MaxStalePeriod is ErrIndexStale; a corrupt one is ErrIndexCorrupted until
// a good one replaces it. When a reload fails, the previous index serves.
func (l *Loader) Index(ctx context.Context, tenant string) (*Index, error) {
	e := l.entry(tenant)
	e.lastUsed.Store(l.now().UnixNano())
	idx, missing, err := e.get()
	if idx == nil {
		// Never loaded, or every load so far failed: load now.
		e.loadMu.Lock()
		if idx, missing, err = e.get(); idx == nil {
			l.load(ctx, tenant, e)
			idx, missing, err = e.get()
		}
		e.loadMu.Unlock()
	}
	if idx == nil {
		return nil, err
	}
	if !missing {
		if age := l.now().Sub(idx.Updated()); age > l.cfg.MaxStalePeriod {
			return nil, fmt.Errorf("%w: tenant %s's was updated %s ago, over -blocks-storage.bucket-index.max-stale-period=%s; is the compactor running?",
				ErrIndexStale, tenant, age.Truncate(time.Second), l.cfg.MaxStalePeriod)
		}
	}
	return idx, nil
}

// Blocks returns tenant's blocks overlapping [mint, maxt] (Unix ms,
// inclusive) that a query reads: those not marked for deletion, or marked
// less than IgnoreDeletionMarksDelay ago.
func (l *Loader) Blocks(ctx context.Context, tenant string, mint, maxt int64) ([]Block, error) {
	idx, err := l.Index(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return idx.Within(mint, maxt, l.MarkedBefore()), nil
}

// MarkedBefore is the cutoff for Index.Within: blocks marked for deletion
// at or before it are no longer read.
func (l *Loader) MarkedBefore() time.Time { return l.now().Add(-l.cfg.IgnoreDeletionMarksDelay) }

// defaultMissingRetry: a tenant whose index was missing (a new tenant, or
// the bucket before the compactor's first run) is looked for again this
// often, not only every UpdateInterval: its first blocks (those of an
// ingester that lost its disk, say) would otherwise stay invisible for a
// whole interval after the index appears.
const defaultMissingRetry = 30 * time.Second

// Run reloads every tenant's index every UpdateInterval, the missing ones
// every missingRetry, and drops the tenants not used for IdleTimeout,
// until ctx is done; returns nil.
func (l *Loader) Run(ctx context.Context) error {
	full := time.NewTicker(l.cfg.UpdateInterval)
	defer full.Stop()
	missing := time.NewTicker(l.missingRetry)
	defer missing.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-full.C:
			l.refresh(ctx, false)
		case <-missing.C:
			l.refresh(ctx, true)
		}
	}
}

// refresh reloads the used tenants' indexes (only the missing ones with
// onlyMissing) and, on a full refresh, drops the idle ones.
func (l *Loader) refresh(ctx context.Context, onlyMissing bool) {
	idleBefore := l.now().Add(-l.cfg.IdleTimeout).UnixNano()
	l.mu.Lock()
	var reload []string
	for tenant, e := range l.tenants {
		if !onlyMissing && e.lastUsed.Load() < idleBefore {
			delete(l.tenants, tenant)
			continue
		}
		if onlyMissing {
			if _, missing, _ := e.get(); !missing {
				continue
			}
		}
		reload = append(reload, tenant)
	}
	l.mu.Unlock()
	for _, tenant := range reload {
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		e := l.tenants[tenant]
		l.mu.Unlock()
		if e == nil {
			continue
		}
		e.loadMu.Lock()
		l.load(ctx, tenant, e)
		e.loadMu.Unlock()
	}
}

// Refresh reloads tenant's index now if this Loader holds it (a tenant
// not loaded yet loads on first use anyway). A process that wrote the
// index itself calls it, so that its readers need not wait for the next
// reload (cmd/strata: the shipper's AddBlocks in -target=all).
func (l *Loader) Refresh(ctx context.Context, tenant string) {
	l.mu.Lock()
	e := l.tenants[tenant]
	l.mu.Unlock()
	if e == nil {
		return
	}
	e.loadMu.Lock()
	l.load(ctx, tenant, e)
	e.loadMu.Unlock()
}

// entry returns tenant's entry, created empty on first use.
func (l *Loader) entry(tenant string) *entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.tenants[tenant]
	if e == nil {
		e = &entry{}
		l.tenants[tenant] = e
	}
	return e
}

// load reads tenant's index into e; the caller holds e.loadMu.
func (l *Loader) load(ctx context.Context, tenant string, e *entry) {
	start := time.Now()
	l.loads.Inc()
	idx, err := ReadIndex(ctx, l.bkt, tenant)
	l.duration.Observe(time.Since(start).Seconds())
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		e.idx, e.missing, e.err = idx, false, nil
	case errors.Is(err, ErrIndexNotFound):
		e.idx, e.missing, e.err = &Index{Version: Version}, true, nil
	case errors.Is(err, ErrIndexCorrupted):
		l.failures.WithLabelValues(reasonCorrupted).Inc()
		l.log.Error("bucket index corrupted; keeping the previous one if any", "tenant", tenant, "err", err)
		e.err = fmt.Errorf("loading bucket index of tenant %s: %w", tenant, err)
	default:
		if ctx.Err() == nil {
			l.failures.WithLabelValues(reasonError).Inc()
			l.log.Warn("loading bucket index; keeping the previous one if any", "tenant", tenant, "err", err)
		}
		e.err = fmt.Errorf("loading bucket index of tenant %s: %w", tenant, err)
	}
}

// get returns the entry's index (nil before a good load), whether the
// bucket had none, and the last load's error.
func (e *entry) get() (*Index, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.idx, e.missing, e.err
}

// oldestAge is the age in seconds of the oldest index in memory.
func (l *Loader) oldestAge() float64 {
	l.mu.Lock()
	entries := make([]*entry, 0, len(l.tenants))
	for _, e := range l.tenants {
		entries = append(entries, e)
	}
	l.mu.Unlock()
	now := l.now()
	var oldest time.Duration
	for _, e := range entries {
		idx, missing, _ := e.get()
		if idx != nil && !missing {
			oldest = max(oldest, now.Sub(idx.Updated()))
		}
	}
	return oldest.Seconds()
}
