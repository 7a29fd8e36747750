package storegateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/ring"
)

// Deps is what a StoreGateway needs besides its configuration.
type Deps struct {
	// Bucket is the whole bucket; tenants are its top-level prefixes.
	Bucket objstore.Bucket
	// Blocks lists a tenant's blocks (the bucket index loader) and Tenants
	// the tenants, for the sync of owned blocks.
	Blocks  bucketindex.BlockLister
	Tenants func(ctx context.Context) ([]string, error)
	// Sharder and InstanceID decide which blocks this instance owns; a nil
	// Sharder owns every block (a single store-gateway).
	Sharder    *ring.BlockSharder
	InstanceID string
	Log        *slog.Logger
	Reg        prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// StoreGateway serves the series of long-term blocks. It implements
// storepb.StoreGatewayServer; it serves before Run (blocks load on demand)
// and Run keeps its owned blocks and idle indexes in order.
type StoreGateway struct {
	storepb.UnimplementedStoreGatewayServer

	cfg  Config
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	m    *metrics
	gate chan struct{} // one slot per block being read

	chunks        *lru[chunkKey, []byte]                 // encoding byte + chunk data
	postings      *lru[postingsKey, []storage.SeriesRef] // series of a matcher set in a block
	seriesEntries *lru[seriesKey, []byte]                // a series entry's content

	mu      sync.Mutex
	blocks  map[blockKey]*blockEntry
	owned   map[blockKey]bool // at the last sync; nil before it
	closing bool

	synced atomic.Bool // the first sync ran
}

var _ storepb.StoreGatewayServer = (*StoreGateway)(nil)

// New returns a StoreGateway. It does no I/O.
func New(cfg Config, deps Deps) (*StoreGateway, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("create store-gateway: -store-gateway.data-dir is empty")
	}
	if deps.Bucket == nil || deps.Blocks == nil || deps.Tenants == nil {
		return nil, errors.New("create store-gateway: BUG: bucket, block lister and tenant lister are required")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(deps.Reg)
	return &StoreGateway{
		cfg: cfg, deps: deps, log: log, now: now, m: m,
		gate:          make(chan struct{}, cfg.Concurrency),
		chunks:        newLRU[chunkKey, []byte](cfg.ChunksCacheMaxBytes, m.chunksCache),
		postings:      newLRU[postingsKey, []storage.SeriesRef](cfg.PostingsCacheMaxBytes, m.postingsCache),
		seriesEntries: newLRU[seriesKey, []byte](cfg.SeriesCacheMaxBytes, m.seriesCache),
		blocks:        map[blockKey]*blockEntry{},
	}, nil
}

// CheckReady fails until the first sync of owned blocks ran (whatever its
// outcome: blocks load on demand, so a failed listing does not stop
// queries). It is a server.ReadyCheck.
func (g *StoreGateway) CheckReady(context.Context) error {
	if !g.synced.Load() {
		return errors.New("store-gateway: first sync of owned blocks not done")
	}
	return nil
}

// Run syncs the owned blocks every -store-gateway.sync-interval and closes
// idle indexes until ctx is done, then closes every index not in use (the
// others close when their last query ends). It returns nil.
func (g *StoreGateway) Run(ctx context.Context) error {
	if err := os.MkdirAll(g.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create -store-gateway.data-dir: %w", err)
	}
	// The first sync waits for this instance to be in the ring (its
	// lifecycler registers it once Run runs): without it, every block
	// would look unowned and its local files would be deleted.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		err := g.sync(ctx)
		if !errors.Is(err, errNotInRing) {
			g.logSync(ctx, err)
			break
		}
		select {
		case <-ctx.Done():
			g.close()
			return nil
		case <-retry.C:
		}
	}
	g.synced.Store(true)
	sync := time.NewTicker(g.cfg.SyncInterval)
	defer sync.Stop()
	sweepEvery := time.Minute
	if g.cfg.IdleTimeout > 0 {
		sweepEvery = min(sweepEvery, max(g.cfg.IdleTimeout/2, time.Second))
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			g.close()
			return nil
		case <-sync.C:
			g.runSync(ctx)
		case <-sweep.C:
			g.closeIdle()
		}
	}
}

func (g *StoreGateway) runSync(ctx context.Context) { g.logSync(ctx, g.sync(ctx)) }

func (g *StoreGateway) logSync(ctx context.Context, err error) {
	if err != nil && ctx.Err() == nil && !errors.Is(err, errNotInRing) {
		g.log.Warn("sync of owned blocks", "err", err)
	}
}

// errNotInRing is a sync skipped because this instance is not in the
// store-gateway ring (not registered yet, or left): ownership is unknown.
var errNotInRing = errors.New("this store-gateway is not in the ring")

// sync works out the blocks this instance owns, then deletes the local
// files of the blocks it neither owns nor has open. A tenant whose blocks
// cannot be listed keeps the blocks it owned.
func (g *StoreGateway) sync(ctx context.Context) error {
	var snap *ring.BlockSnapshot
	if g.deps.Sharder != nil {
		if snap = g.deps.Sharder.Snapshot(); !snap.Has(g.deps.InstanceID) {
			return errNotInRing
		}
	}
	g.m.syncs.Inc()
	tenants, err := g.deps.Tenants(ctx)
	if err != nil {
		g.m.syncFailures.Inc()
		return fmt.Errorf("listing tenants: %w", err)
	}
	g.mu.Lock()
	prev := g.owned
	g.mu.Unlock()
	owned := map[blockKey]bool{}
	var errs []error
	for _, t := range tenants {
		refs, err := g.deps.Blocks.Blocks(ctx, t, math.MinInt64, math.MaxInt64)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing blocks of tenant %s: %w", t, err))
			for k := range prev {
				if k.tenant == t {
					owned[k] = true
				}
			}
			continue
		}
		for _, r := range refs {
			if snap == nil || snap.Owns(g.deps.InstanceID, t, r.ID) {
				owned[blockKey{t, r.ID}] = true
			}
		}
	}
	g.mu.Lock()
	g.owned = owned
	g.mu.Unlock()
	g.m.blocksOwned.Set(float64(len(owned)))
	if err := g.removeUnowned(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		g.m.syncFailures.Inc()
		return errors.Join(errs...)
	}
	g.m.lastSyncTime.Set(float64(g.now().UnixNano()) / 1e9)
	return nil
}

// removeUnowned deletes the local index files of blocks not owned and not
// open; a block's entry lock keeps a concurrent load out meanwhile.
func (g *StoreGateway) removeUnowned() error {
	tenants, err := os.ReadDir(g.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("listing -store-gateway.data-dir: %w", err)
	}
	var (
		errs        []error
		headerBytes int64
	)
	defer func() { g.m.headerBytes.Set(float64(headerBytes)) }()
	for _, td := range tenants {
		if !td.IsDir() {
			continue
		}
		dirs, err := os.ReadDir(g.tenantDir(td.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("listing -store-gateway.data-dir: %w", err))
			continue
		}
		left := len(dirs)
		for _, bd := range dirs {
			id, err := ulid.ParseStrict(bd.Name())
			if err != nil || !bd.IsDir() {
				continue
			}
			key := blockKey{td.Name(), id}
			g.mu.Lock()
			owned := g.owned[key]
			g.mu.Unlock()
			var size int64
			if st, err := os.Stat(filepath.Join(g.blockDir(key), headerFilename)); err == nil {
				size = st.Size()
			}
			if owned {
				headerBytes += size
				// The whole index an older version downloaded.
				_ = os.Remove(filepath.Join(g.blockDir(key), block.IndexFilename))
				continue
			}
			if removed, err := g.removeIfIdle(key); err != nil {
				errs = append(errs, err)
				headerBytes += size
			} else if removed {
				left--
			} else {
				headerBytes += size
			}
		}
		if left == 0 {
			_ = os.Remove(g.tenantDir(td.Name())) // fails harmlessly when a load just created a block
		}
	}
	return errors.Join(errs...)
}

// closeIdle closes the indexes not used for -store-gateway.lazy-load-idle-timeout.
func (g *StoreGateway) closeIdle() {
	if g.cfg.IdleTimeout <= 0 {
		return
	}
	cutoff := g.now().Add(-g.cfg.IdleTimeout)
	for _, e := range g.entries() {
		e.mu.Lock()
		if e.ir != nil && e.refs == 0 && e.lastUsed.Before(cutoff) {
			g.unloadLocked(e)
		}
		e.mu.Unlock()
	}
}

// close closes every index not in use and makes the others close when
// released.
func (g *StoreGateway) close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	for _, e := range g.entries() {
		e.mu.Lock()
		if e.ir != nil && e.refs == 0 {
			g.unloadLocked(e)
		}
		e.mu.Unlock()
	}
}

func (g *StoreGateway) entries() []*blockEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*blockEntry, 0, len(g.blocks))
	for _, e := range g.blocks {
		out = append(out, e)
	}
	return out
}
