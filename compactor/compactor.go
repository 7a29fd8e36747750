package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// RingKey is the gossip key of the compactor ring.
const RingKey = "compactor"

// RingNumTokens is how many tokens a compactor takes in its ring: more
// than an ingester's, since tenants are few and must spread evenly.
const RingNumTokens = 512

// ringIndexer is what the compactor needs of its ring (*ring.Ring): the
// token index of its current state. It does no I/O and is goroutine-safe.
type ringIndexer interface {
	Index() *ring.Index
}

// Deps is what a Compactor needs besides its configuration.
type Deps struct {
	Bucket objstore.Bucket // the bucket root (tenants are its top directories)
	// Ring is the compactor ring; nil means this compactor owns every
	// tenant (one process).
	Ring ringIndexer
	// InstanceID is this compactor's id in Ring.
	InstanceID string
	// HeartbeatTimeout: a ring member whose heartbeat is older owns
	// nothing (its tenants pass to the next member); 0 never times out.
	HeartbeatTimeout time.Duration
	// Retention returns a tenant's retention period; nil or 0 keeps its
	// blocks forever.
	Retention func(tenant string) time.Duration
	// IngesterReplicationFactor is the ingesters' -ring.replication-factor:
	// with it a damaged ingester copy of a 2h range whose other copies read
	// fine is marked for deletion (see coveredCopies); 0 (unknown) and 1
	// keep it, marked no-compact only.
	IngesterReplicationFactor int
	Log                       *slog.Logger
	Reg                       prometheus.Registerer
	Now                       func() time.Time // nil: time.Now
}

// Compactor compacts, retains and deletes the blocks of the tenants it owns
// and keeps their bucket indexes.
type Compactor struct {
	cfg     Config
	bkt     objstore.Bucket
	ring    ringIndexer
	id      string
	hbTO    time.Duration
	retain  func(string) time.Duration
	rf      int // the ingesters' replication factor; 0 unknown
	log     *slog.Logger
	tsdbLog *slog.Logger
	now     func() time.Time

	planner     planner
	updater     *bucketindex.Updater
	m           *metrics
	tsdbMetrics *tsdb.CompactorMetrics

	// openBlock and verifyBlock open and read a downloaded block (tests
	// replace them to inject local failures).
	openBlock   func(log *slog.Logger, dir string) (*tsdb.Block, error)
	verifyBlock func(ctx context.Context, b *tsdb.Block) error

	trigger chan chan error
	running atomic.Bool
	stopped chan struct{} // closed when Run returns
}

// New returns a Compactor. It does no I/O.
func New(cfg Config, deps Deps) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir == "" {
		return nil, errors.New("compactor: -compactor.data-dir is not set")
	}
	if deps.Bucket == nil {
		return nil, errors.New("compactor: no bucket")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retain := deps.Retention
	if retain == nil {
		retain = func(string) time.Duration { return 0 }
	}
	return &Compactor{
		cfg: cfg, bkt: deps.Bucket, ring: deps.Ring, id: deps.InstanceID, hbTO: deps.HeartbeatTimeout,
		retain: retain, rf: deps.IngesterReplicationFactor, log: log, now: now,
		// Prometheus logs every compaction at info; ours says more.
		tsdbLog:     slog.New(minLevel{log.Handler(), slog.LevelWarn}),
		planner:     planner{ranges: cfg.BlockRanges.ranges(), firstLevelWait: cfg.FirstLevelCompactionWaitPeriod},
		updater:     bucketindex.NewUpdater(deps.Bucket, log, now),
		m:           newMetrics(deps.Reg, cfg.BlockRanges),
		tsdbMetrics: tsdb.NewCompactorMetrics(nil),
		openBlock:   openBlock,
		verifyBlock: verifyBlock,
		trigger:     make(chan chan error),
		stopped:     make(chan struct{}),
	}, nil
}

// Run empties the work directory, runs a compaction at once and then every
// CompactionInterval, a cleanup every CleanupInterval and a compaction on
// each RunHandler request, one at a time, until ctx is done. It returns nil
// when ctx ends, an error only if the work directory is unusable. Call it
// once.
func (c *Compactor) Run(ctx context.Context) error {
	if err := os.RemoveAll(c.cfg.DataDir); err != nil {
		return fmt.Errorf("emptying -compactor.data-dir: %w", err)
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("creating -compactor.data-dir: %w", err)
	}
	c.running.Store(true)
	defer close(c.stopped)
	c.waitInRing(ctx)
	_ = c.runOnce(ctx, true)
	compactT := time.NewTicker(c.cfg.CompactionInterval)
	defer compactT.Stop()
	cleanupT := time.NewTicker(c.cfg.CleanupInterval)
	defer cleanupT.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-compactT.C:
			_ = c.runOnce(ctx, true)
		case <-cleanupT.C:
			_ = c.runOnce(ctx, false)
		case reply := <-c.trigger:
			reply <- c.runOnce(ctx, true)
		}
	}
}

// ringWait bounds how long the first run waits for this compactor to be
// ACTIVE in its ring (it owns nothing before).
const ringWait = time.Minute

// waitInRing waits until this instance is healthy in the ring, ringWait
// at most, so that the first run owns its tenants.
func (c *Compactor) waitInRing(ctx context.Context) {
	if c.ring == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, ringWait)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !c.inRing() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Compactor) inRing() bool {
	in, ok := c.ring.Index().Instance(c.id)
	return ok && in.Healthy(ring.Write, c.hbTO, c.now())
}

// RunHandler serves POST /compactor/run: a compaction run of every owned
// tenant, at once; it answers when the run ends (200, or 500 with the
// error). For tests and operators.
func (c *Compactor) RunHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST starts a compaction run", http.StatusMethodNotAllowed)
			return
		}
		if !c.running.Load() {
			http.Error(w, "the compactor is not running", http.StatusServiceUnavailable)
			return
		}
		reply := make(chan error, 1)
		select {
		case c.trigger <- reply:
		case <-c.stopped:
			http.Error(w, "the compactor stopped", http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
		select {
		case err := <-reply:
			if err != nil {
				http.Error(w, "compaction run: "+err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "compaction run completed")
		case <-c.stopped:
			http.Error(w, "the compactor stopped", http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	})
}

// runStats sums what the tenants of one run saw.
type runStats struct {
	partial, corruptMeta atomic.Int64
}

// runOnce processes every owned tenant: cleanup, and compaction too when
// compact is set. A tenant's failure is logged and does not stop the
// others; the error says how many failed.
func (c *Compactor) runOnce(ctx context.Context, compact bool) error {
	start := time.Now()
	if compact {
		c.m.runsStarted.Inc()
	}
	err := c.runTenants(ctx, compact)
	if compact {
		c.m.runDuration.Observe(time.Since(start).Seconds())
	}
	switch {
	case ctx.Err() != nil:
		// Shutting down: neither a failure nor a success.
	case compact && err != nil:
		c.m.runsFailed.Inc()
	case compact:
		c.m.runsCompleted.Inc()
		c.m.lastSuccess.Set(float64(c.now().Unix()))
	case err != nil:
		c.m.cleanups.Inc()
		c.m.cleanupFailures.Inc()
	default:
		c.m.cleanups.Inc()
	}
	return err
}

// runTenants runs every owned tenant, CompactionConcurrency at a time, and
// logs each one's failure.
func (c *Compactor) runTenants(ctx context.Context, compact bool) error {
	tenants, err := c.listTenants(ctx)
	if err != nil {
		c.log.Error("compactor run", "err", err)
		return err
	}
	owned := c.ownedTenants(tenants)
	c.m.tenantsOwned.Set(float64(len(owned)))
	var (
		stats  runStats
		failed atomic.Int64
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	for range min(c.cfg.CompactionConcurrency, len(owned)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(owned) || ctx.Err() != nil {
					return
				}
				if err := c.runTenant(ctx, owned[i], compact, &stats); err != nil && ctx.Err() == nil {
					failed.Add(1)
					c.m.tenantFailures.Inc()
					c.log.Error("processing tenant; retried next run", "tenant", owned[i], "compaction", compact, "err", err)
				}
			}
		}()
	}
	wg.Wait()
	c.m.partialBlocks.Set(float64(stats.partial.Load()))
	c.m.corruptMeta.Set(float64(stats.corruptMeta.Load()))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d tenants failed (see the log)", n, len(owned))
	}
	return nil
}

// listTenants returns the tenants of the bucket: its top directories that
// are valid tenant ids.
func (c *Compactor) listTenants(ctx context.Context) ([]string, error) {
	var out []string
	err := c.bkt.Iter(ctx, "", func(name string) error {
		id, ok := strings.CutSuffix(name, "/")
		if ok && tenant.Validate(id) == nil {
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	return out, nil
}

// minLevel is a slog.Handler dropping records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
