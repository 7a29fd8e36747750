package ingester

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/shipper"
	"github.com/strata-metrics/strata/tenant"
)

// Ingester serves ingesterpb.IngesterServer over one TSDB per tenant.
// Its methods are safe for concurrent use.
type Ingester struct {
	ingesterpb.UnimplementedIngesterServer

	cfg     Config
	dir     string // <data.dir>/tsdb
	limits  *limits.Overrides
	log     *slog.Logger
	metrics *metrics

	limitMetrics *limitMetrics   // push_limits.go
	idle         *idleMetrics    // idle.go
	compact      *compactMetrics // compact.go
	ringShare    RingShare       // push_limits.go: Deps.RingShare; nil: the whole limit

	pushPool sync.Pool   // *pushState
	rates    ingestRates // stats_rate.go: per-tenant ingestion rate, fed by Push

	mu    sync.RWMutex
	state state                // guarded by mu
	dbs   map[string]*tenantDB // guarded by mu
	// inflight counts the requests that hold a tenantDB. It is only added to
	// under mu while state is running, so once state leaves running its Wait
	// sees every request that will ever hold a DB.
	inflight sync.WaitGroup
	// stopping is closed when shutdown starts; long streams watch it.
	stopping chan struct{}
	started  atomic.Bool

	ship *shipping // ship.go: nil without Deps.Bucket

	disk  *diskMonitor // disk.go: the free-space reserve
	recov *recoveries  // tenant_recover.go: failed tenants' reopening
}

var _ ingesterpb.IngesterServer = (*Ingester)(nil)

type state int

const (
	stateStarting state = iota // replaying WALs; no requests
	stateRunning
	stateStopping // draining in-flight requests, then closing DBs
	stateStopped
)

func (s state) String() string {
	switch s {
	case stateStarting:
		return "starting (replaying WALs)"
	case stateRunning:
		return "running"
	case stateStopping:
		return "stopping"
	}
	return "stopped"
}

// tenantDB is one tenant's TSDB and what the ingester keeps beside it.
type tenantDB struct {
	id string

	// ready is set once db is open; until then opened is the way to wait.
	ready  atomic.Bool
	opened chan struct{}
	db     *tsdb.DB // set before ready/opened; nil if err
	err    error

	metadata metadataStore
	reg      *prometheus.Registry // the TSDB's own metrics, summed by tsdbCollector
	series   *seriesLimiter       // push_limits.go: the TSDB's SeriesLifecycleCallback
	config   tenantConfig         // tenant_config.go: per-tenant TSDB settings applied
	ship     tenantShipping       // ship.go: the tenant's shipper and the cut barrier
	health   tenantHealth         // tenant_recover.go: failure, drain, WAL watch
	lastPush atomic.Int64         // idle.go: Unix ns of the last push, or of the open

	// compact.go: the head chunk files found at open, and whether the
	// chunk disk mapper has cut one of its own since.
	chunkFilesAtOpen []os.FileInfo
	chunkFileCut     atomic.Bool

	// order makes a push that touches a series of an earlier push still
	// in flight wait for its commit (push_order.go).
	order pushOrder
}

// Deps is what the ingester needs from the process.
type Deps struct {
	// DataDir is -data.dir: the TSDBs go under DataDir/tsdb.
	DataDir string
	// Limits are every tenant's limits; nil: none (push_limits.go,
	// tenant_config.go).
	Limits *limits.Overrides
	// RingShare turns cluster-wide series limits into this ingester's
	// share; nil: the whole limit applies to each ingester, which is right
	// for one ingester or replication factor = ingesters.
	RingShare RingShare
	// Bucket receives the tenants' blocks as they are cut (ship.go); nil:
	// the ingester keeps blocks for -blocks-storage.tsdb.retention-period
	// and ships nothing.
	Bucket objstore.Bucket
	// InstanceID is written into every shipped block's meta.json: the
	// compactor tells the replicas' copies apart by it. Needed with Bucket.
	InstanceID string
	// BlocksIndexed, if set, is called after a tenant's shipper added
	// blocks to the tenant's bucket index (shipper.Deps.Indexed): -target=all
	// reloads its querier's copy of the index.
	BlocksIndexed func(ctx context.Context, tenant string)
	// TenantLabels caps the tenant label of the ingester's metrics
	// (-metrics.max-tenant-labels), shared by every component of the
	// process; nil labels every tenant with its id.
	TenantLabels *tenant.LabelCap
	// Log may be nil (discarded); Reg may be nil (metrics not registered).
	Log *slog.Logger
	Reg prometheus.Registerer
}

// New returns an Ingester that keeps its TSDBs under <d.DataDir>/tsdb. It
// does no I/O: Run opens the existing TSDBs.
func New(cfg Config, d Deps) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.DataDir == "" {
		return nil, errors.New("ingester needs a data directory (-data.dir)")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	i := &Ingester{
		cfg:       cfg,
		dir:       filepath.Join(d.DataDir, "tsdb"),
		limits:    d.Limits,
		log:       log,
		ringShare: d.RingShare,
		dbs:       map[string]*tenantDB{},
		stopping:  make(chan struct{}),
	}
	i.pushPool.New = newPushState
	i.metrics = newMetrics(d.Reg, i)
	i.limitMetrics = newLimitMetrics(d.Reg)
	i.idle = newIdleMetrics(d.Reg)
	i.compact = newCompactMetrics(d.Reg)
	i.initDisk(d.DataDir, d.Reg) // tenant_recover.go
	if d.TenantLabels != nil {
		i.setTenantLabels(d.TenantLabels)
	}
	if d.Bucket != nil {
		if d.InstanceID == "" {
			return nil, errors.New("ingester shipping needs the instance id (-instance.id)")
		}
		i.ship = &shipping{bkt: d.Bucket, instanceID: d.InstanceID, metrics: shipper.NewMetrics(d.Reg, d.TenantLabels), indexed: d.BlocksIndexed}
	}
	return i, nil
}

// Run opens every tenant TSDB found on disk (replaying its WAL), turns ready,
// serves until ctx is done, then shuts down: it stops taking requests, waits
// for the in-flight ones, closes every TSDB and returns nil. A tenant whose
// TSDB cannot be opened at start is logged, counted and refused (503) while
// its reopening is retried (tenant_recover.go); the others serve. A TSDB
// that cannot be closed at the end makes Run return an error.
func (i *Ingester) Run(ctx context.Context) error {
	if !i.started.CompareAndSwap(false, true) {
		return errors.New("ingester: Run called twice")
	}
	start := time.Now()
	stopDisk := i.startDiskMonitor() // disk.go
	defer stopDisk()
	if err := i.openExisting(ctx); err != nil {
		i.setState(stateStopping)
		close(i.stopping)
		i.stopRecoveries()
		err = errors.Join(err, i.closeAll())
		i.setState(stateStopped)
		return err
	}
	if ctx.Err() == nil {
		i.setState(stateRunning)
		i.log.Info("ingester ready", "tenants", i.numTenants(), "replay_duration", time.Since(start))
		stopShipping := i.startShipLoop()          // ship.go
		stopCompactions := i.startCompactionLoop() // compact.go, idle.go
		<-ctx.Done()
		stopCompactions()
		stopShipping()
	}

	i.log.Info("ingester stopping: draining in-flight requests")
	i.setState(stateStopping)
	close(i.stopping)
	i.inflight.Wait()
	i.stopRecoveries()                                    // tenant_recover.go
	err := errors.Join(i.flushOnShutdown(), i.closeAll()) // ship.go: with -ingester.flush-on-shutdown
	i.setState(stateStopped)
	i.log.Info("ingester stopped")
	return err
}

// CheckReady returns nil once every TSDB found at start is open and until
// shutdown starts: the process' /ready reports it.
func (i *Ingester) CheckReady(context.Context) error {
	i.mu.RLock()
	s := i.state
	i.mu.RUnlock()
	if s != stateRunning {
		return fmt.Errorf("ingester is %s", s)
	}
	return nil
}

func (i *Ingester) setState(s state) {
	i.mu.Lock()
	i.state = s
	i.mu.Unlock()
}

func (i *Ingester) numTenants() int {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return len(i.dbs)
}

// openExisting opens the TSDB of every tenant directory under i.dir, a few
// at a time (each replay is itself parallel).
func (i *Ingester) openExisting(ctx context.Context) error {
	if err := os.MkdirAll(i.dir, 0o777); err != nil {
		return fmt.Errorf("create tsdb directory: %w", err)
	}
	entries, err := os.ReadDir(i.dir)
	if err != nil {
		return fmt.Errorf("list tenant tsdbs: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, runtime.GOMAXPROCS(0)/2))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		if err := tenant.Validate(id); err != nil {
			i.log.Warn("skipping directory that is not a tenant tsdb", "dir", filepath.Join(i.dir, id), "err", err)
			continue
		}
		u := &tenantDB{id: id, opened: make(chan struct{})}
		i.mu.Lock()
		i.dbs[id] = u
		i.mu.Unlock()
		g.Go(func() error {
			if gctx.Err() != nil {
				u.err = gctx.Err()
				close(u.opened)
				return nil // shutting down before ready: not an error
			}
			i.openDB(u)
			if u.err != nil {
				i.tenantOpenFailed(u) // tenant_recover.go: refused and retried
			}
			return nil
		})
	}
	return g.Wait()
}

// openDB opens u's TSDB, replaying its WAL, and publishes the result.
func (i *Ingester) openDB(u *tenantDB) {
	defer close(u.opened)
	// Defence in depth: the id was checked by the caller, but it becomes a path.
	if err := tenant.Validate(u.id); err != nil {
		u.err = err
		return
	}
	dir := filepath.Join(i.dir, u.id)
	// Each TSDB registers its metrics on a registry of its own (one shared
	// registry would reject the second tenant's identical metrics); the
	// ingester's collector sums a chosen few across tenants at scrape time,
	// so the TSDB metrics cost no cardinality per tenant.
	u.reg = prometheus.NewRegistry()
	opts := i.tenantTSDBOptions(u) // tenant_config.go; inits u.metadata
	u.series = i.newSeriesLimiter(u.id)
	opts.SeriesLifecycleCallback = u.series
	if err := i.openShipper(u, dir, opts); err != nil { // ship.go
		u.err = err
		return
	}
	if err := i.restoreRepairs(u.id, dir); err != nil { // wal_repair.go
		u.err = err
		return
	}
	// The registry is wrapped to capture the WAL's failed-write counters
	// (wal_failure.go).
	db, err := tsdb.Open(dir, i.log.With("tenant", u.id), watchingRegisterer{u.reg, &u.health.wal}, opts, nil)
	if err != nil {
		u.err = err
		return
	}
	// compact.go: the compaction loop compacts the head, not the TSDB.
	db.DisableCompactions()
	u.chunkFilesAtOpen = chunkFiles(dir)
	i.checkWALWatch(u) // wal_failure.go
	u.series.enforce() // the WAL is replayed: limits apply from here on
	u.db = db
	u.markPush(time.Now()) // idle.go: a reopened head waits a whole idle timeout
	u.ready.Store(true)
	i.log.Debug("opened tenant tsdb", "tenant", u.id, "dir", dir, "series", db.Head().NumSeries())
}

// errUnavailable is returned while the ingester is starting or stopping.
type errUnavailable struct{ s state }

func (e errUnavailable) Error() string { return "ingester is " + e.s.String() }

// acquire returns tenant's DB for one request and counts the request as in
// flight. With create, a tenant without a DB gets one (opened once however
// many requests race for it); without, a missing DB returns (nil, nil). When
// err is nil the caller must call i.release(u) when done with the DB. A
// tenant that failed or is being reopened (tenant_recover.go) is refused
// with a *tenantUnavailableError.
func (i *Ingester) acquire(ctx context.Context, id string, create bool) (*tenantDB, error) {
	i.mu.RLock()
	if i.state != stateRunning {
		s := i.state
		i.mu.RUnlock()
		return nil, errUnavailable{s}
	}
	i.inflight.Add(1)
	u := i.dbs[id]
	i.mu.RUnlock()
	if u != nil && u.ready.Load() {
		if u.health.drain.TryRLock() {
			return u, nil // the hot path
		}
		i.inflight.Done()
		return nil, u.unavailable() // tenant_recover.go: being reopened
	}
	if u == nil {
		if !create {
			return nil, nil
		}
		if err := tenant.Validate(id); err != nil {
			i.inflight.Done()
			return nil, err
		}
		var opener bool
		i.mu.Lock()
		if u = i.dbs[id]; u == nil {
			u = &tenantDB{id: id, opened: make(chan struct{})}
			i.dbs[id] = u
			opener = true
		}
		i.mu.Unlock()
		if opener {
			i.openDB(u)
			if u.err != nil {
				i.mu.Lock()
				delete(i.dbs, id) // the next request tries again
				i.mu.Unlock()
			} else {
				i.log.Info("opened tsdb of new tenant", "tenant", id)
			}
		}
	}
	select {
	case <-u.opened:
	case <-ctx.Done():
		i.inflight.Done()
		return nil, ctx.Err()
	}
	if u.err != nil || !u.health.drain.TryRLock() {
		i.inflight.Done()
		if u.err != nil && u.health.failure.Load() == nil {
			return nil, fmt.Errorf("open tsdb of tenant %q: %w", id, u.err)
		}
		return nil, u.unavailable() // tenant_recover.go: failed or being reopened
	}
	return u, nil
}

// release ends a request that acquire let in; u is acquire's answer.
func (i *Ingester) release(u *tenantDB) {
	if u != nil {
		u.health.drain.RUnlock()
	}
	i.inflight.Done()
}

// closeAll closes every open TSDB; called once nothing is in flight.
func (i *Ingester) closeAll() error {
	i.mu.Lock()
	dbs := i.dbs
	i.dbs = map[string]*tenantDB{}
	i.mu.Unlock()
	var errs []error
	for id, u := range dbs {
		<-u.opened
		if u.db == nil || u.health.closed.Load() {
			continue
		}
		u.closeShipper() // ship.go
		if err := u.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close tsdb of tenant %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// snapshot returns the open tenant DBs, for metrics collected at scrape time.
func (i *Ingester) snapshot(dst []*tenantDB) []*tenantDB {
	i.mu.RLock()
	defer i.mu.RUnlock()
	for _, u := range i.dbs {
		if u.ready.Load() {
			dst = append(dst, u)
		}
	}
	return dst
}
