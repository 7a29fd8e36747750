package ingester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"

	"github.com/strata-metrics/strata/shipper"
	"github.com/strata-metrics/strata/tenant"
)

// Shipping blocks to object storage. The TSDB cuts a tenant's
// head into a block every -blocks-storage.tsdb.block-ranges-period; every
// -ingester.ship-interval the ship loop hands each tenant's new blocks to
// its shipper.Shipper, which uploads them. The TSDB deletes a local block
// only once it is uploaded and -ingester.retain-shipped-for old
// (shipper.BlocksToDelete replaces the TSDB's time retention). POST
// /ingester/flush, and shutdown with -ingester.flush-on-shutdown, cut the
// whole head into blocks at once and ship them, for scale-down.

// shipping is the ingester's side of shipping; nil without a bucket.
type shipping struct {
	bkt        objstore.Bucket
	instanceID string
	metrics    *shipper.Metrics
	indexed    func(ctx context.Context, tenant string) // Deps.BlocksIndexed
}

// tenantShipping is what shipping keeps per tenant (tenantDB.ship).
type tenantShipping struct {
	shipper *shipper.Shipper // nil without shipping
	// pushing is held shared by every push for its whole append, from
	// creating the appender (which fixes the minimum valid time the
	// append checks against) to its commit (push.go). A cut raises the
	// head's minimum valid time, then takes pushing exclusively for an
	// instant: every append that could still write at or below the cut
	// has then committed, and the later ones refuse such samples, so no
	// acknowledged sample falls between the block and the head. (The
	// TSDB's own head compaction needs no barrier: it cuts only data older
	// than half a block range, which no append reaches.) tenantDB.order
	// cannot serve: a push enters it after creating its appender.
	pushing sync.RWMutex
	cutMu   sync.Mutex // one cut at a time
}

// shipConcurrency is how many tenants upload at once: uploads wait on the
// network, and at a block boundary every tenant has a block to ship; four
// overlap round trips without letting checksums and TLS of many uploads
// crowd out pushes on a small machine.
const shipConcurrency = 4

// openShipper gives u its shipper and the TSDB options their
// BlocksToDelete; openDB calls it before tsdb.Open. Without shipping it
// leaves the options alone (the TSDB's time retention applies).
func (i *Ingester) openShipper(u *tenantDB, dir string, opts *tsdb.Options) error {
	if i.ship == nil {
		return nil
	}
	s, err := shipper.New(shipper.Deps{
		Dir: dir, Bucket: i.ship.bkt, Tenant: u.id, Ingester: i.ship.instanceID,
		Metrics: i.ship.metrics, Log: i.log, Indexed: i.ship.indexed,
	})
	if err != nil {
		return err
	}
	u.ship.shipper = s
	opts.BlocksToDelete = s.BlocksToDelete(i.cfg.RetainShippedFor)
	return nil
}

// closeShipper takes u's pending blocks out of the metrics; closeAll
// calls it.
func (u *tenantDB) closeShipper() {
	if u.ship.shipper != nil {
		u.ship.shipper.Close()
	}
}

// startShipLoop starts the goroutine that ships every tenant's new blocks
// now and every -ingester.ship-interval; stop cancels it (an upload in
// flight is abandoned and retried at the next start) and waits for it.
// Run calls it once the ingester is running.
func (i *Ingester) startShipLoop() (stop func()) {
	if i.ship == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(i.cfg.ShipInterval)
		defer t.Stop()
		for {
			i.shipTenants(ctx, i.snapshot(nil))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// shipTenants ships the new blocks of dbs, a few tenants at a time, and
// logs the failures (they are retried at the next round).
func (i *Ingester) shipTenants(ctx context.Context, dbs []*tenantDB) {
	var g errgroup.Group
	g.SetLimit(shipConcurrency)
	for _, u := range dbs {
		g.Go(func() error {
			if _, err := i.shipTenant(ctx, u); err != nil && ctx.Err() == nil {
				i.log.Warn("shipping blocks failed; retrying at the next round", "tenant", u.id, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

func (i *Ingester) shipTenant(ctx context.Context, u *tenantDB) (int, error) {
	if u.ship.shipper == nil {
		return 0, nil
	}
	// Ship only while no recovery reopens the tenant (tenant_recover.go):
	// it closes this shipper and opens another over the same directory.
	// A tenant being reopened ships at the next round.
	if !u.health.drain.TryRLock() {
		return 0, nil
	}
	defer u.health.drain.RUnlock()
	if u.health.closed.Load() {
		return 0, nil
	}
	return u.ship.shipper.Sync(ctx)
}

// cutHead compacts u's whole head, in-order and out-of-order, into blocks
// (one per block range it spans; the last ends at the newest sample), so
// that the head holds nothing older than the cut. Samples at or before
// the cut are refused afterwards, unless the tenant's out-of-order window
// takes them.
func (i *Ingester) cutHead(ctx context.Context, u *tenantDB) error {
	_, err := i.cutHeadIf(ctx, u, nil)
	return err
}

// cutHeadIf is cutHead, except that with a non-nil cond it cuts only when
// the in-order head has series and samples and cond, asked while no
// append runs, says so (idle.go); it reports whether it cut.
func (i *Ingester) cutHeadIf(ctx context.Context, u *tenantDB, cond func() bool) (bool, error) {
	u.ship.cutMu.Lock()
	defer u.ship.cutMu.Unlock()
	h := u.db.Head()
	// The barrier: holding pushing exclusively, every append that began
	// before has committed, and the next ones see the raised minimum valid
	// time. It is held through the compaction too, and every full chunk
	// is m-mapped first (quietChunkWrites), so that no chunk is written
	// beside the compaction's head truncations (compact.go says which
	// Prometheus panic that avoids). The tenant's pushes wait for the cut;
	// a flush is an operator's or an idle tenant's.
	u.ship.pushing.Lock()
	defer u.ship.pushing.Unlock()
	maxt := h.MaxTime()
	empty := maxt == math.MinInt64 || h.MinTime() > maxt
	// After a cut the head's times can still span one instant; a head
	// with no series holds nothing to cut.
	if cond != nil && (empty || h.NumSeries() == 0 || !cond()) {
		return false, nil
	}
	u.quietChunkWrites() // compact.go
	if !empty {
		if cur, ok := h.AppendableMinValidTime(); !ok || cur <= maxt {
			h.SetMinValidTime(maxt + 1)
		}
	}
	if !empty {
		rng := i.cfg.BlockRangesPeriod.Milliseconds()
		for mint := h.MinTime(); mint <= maxt; {
			start := mint - ((mint%rng)+rng)%rng // floor to the range, negative times too
			end := min(start+rng-1, maxt)
			if err := u.db.CompactHead(tsdb.NewRangeHead(h, mint, end)); err != nil {
				return true, fmt.Errorf("cutting the head of tenant %q: %w", u.id, err)
			}
			mint = end + 1
		}
	}
	if err := u.db.CompactOOOHead(ctx); err != nil {
		return true, fmt.Errorf("cutting the out-of-order head of tenant %q: %w", u.id, err)
	}
	return true, nil
}

// FlushResult says what a flush did, per tenant.
type FlushResult struct {
	Tenants []TenantFlush `json:"tenants"`
}

// TenantFlush is one tenant's part of a flush.
type TenantFlush struct {
	Tenant        string `json:"tenant"`
	BlocksShipped int    `json:"blocks_shipped"`
	Error         string `json:"error,omitempty"`
}

// Flush cuts the heads of the given tenants (every tenant when none is
// given) into blocks and ships every block not shipped yet, one tenant at
// a time. It is for operators before a scale-down and for tests; samples
// at or before each tenant's cut are refused afterwards (see cutHead).
// It returns errUnavailable unless the ingester is running; a tenant's
// failure is in its TenantFlush and in the joined error.
func (i *Ingester) Flush(ctx context.Context, tenantIDs ...string) (FlushResult, error) {
	var res FlushResult
	i.mu.RLock()
	s := i.state
	i.mu.RUnlock()
	if s != stateRunning {
		return res, errUnavailable{s}
	}
	if len(tenantIDs) == 0 {
		for _, u := range i.snapshot(nil) {
			tenantIDs = append(tenantIDs, u.id)
		}
		sort.Strings(tenantIDs)
	}
	var errs []error
	for _, id := range tenantIDs {
		u, err := i.acquire(ctx, id, false)
		if errors.As(err, new(errUnavailable)) {
			return res, err
		}
		if err == nil && u == nil {
			i.release(u)
			continue // no TSDB: nothing to flush
		}
		tf := TenantFlush{Tenant: id}
		if err == nil {
			tf.BlocksShipped, err = i.flushTenant(ctx, u)
			i.release(u)
		}
		if err != nil {
			tf.Error = err.Error()
			errs = append(errs, err)
		}
		res.Tenants = append(res.Tenants, tf)
	}
	return res, errors.Join(errs...)
}

func (i *Ingester) flushTenant(ctx context.Context, u *tenantDB) (int, error) {
	if err := i.cutHead(ctx, u); err != nil {
		return 0, err
	}
	return i.shipTenant(ctx, u)
}

// flushOnShutdown cuts and ships every tenant's head with
// -ingester.flush-on-shutdown; Run calls it once no request is in flight
// and before the TSDBs close. A failure is returned; the blocks cut stay
// on disk and ship at the next start.
func (i *Ingester) flushOnShutdown() error {
	if !i.cfg.FlushOnShutdown {
		return nil
	}
	i.mu.RLock()
	dbs := make([]*tenantDB, 0, len(i.dbs))
	for _, u := range i.dbs {
		if u.ready.Load() {
			dbs = append(dbs, u)
		}
	}
	i.mu.RUnlock()
	i.log.Info("flushing every tenant's head to blocks before shutdown", "tenants", len(dbs), "ship", i.ship != nil)
	// Bounded below the process' own stop deadline, so that an unresponsive
	// bucket still leaves time to close the TSDBs (their WAL keeps what was
	// not shipped) and the log says which tenants were not shipped.
	ctx, cancel := context.WithTimeout(context.Background(), FlushOnShutdownTimeout)
	defer cancel()
	var errs []error
	for _, u := range dbs {
		if _, err := i.flushTenant(ctx, u); err != nil {
			i.log.Error("flush on shutdown: tenant not shipped; its WAL and blocks stay on this disk", "tenant", u.id, "err", err)
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flush on shutdown: %w", err)
	}
	i.log.Info("flushed every tenant's head")
	return nil
}

// FlushOnShutdownTimeout bounds -ingester.flush-on-shutdown: cutting and
// uploading every tenant's head. cmd/strata gives the ingester's stop a
// little more.
const FlushOnShutdownTimeout = 9 * time.Minute

// FlushHandler serves POST /ingester/flush[?tenant=<id>…]: it cuts the
// heads of the named tenants (all by default) into blocks and ships them,
// answering when done with a FlushResult in JSON: 200 when every tenant
// flushed, 500 when one failed, 503 when the ingester is not running.
// Operators call it before scaling an ingester down; a client that gives
// up early stops the uploads, which the ship loop then retries.
func (i *Ingester) FlushHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST to flush", http.StatusMethodNotAllowed)
			return
		}
		ids := r.URL.Query()["tenant"]
		for _, id := range ids {
			if err := tenant.Validate(id); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		res, err := i.Flush(r.Context(), ids...)
		status := http.StatusOK
		switch {
		case errors.As(err, new(errUnavailable)):
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			status = http.StatusInternalServerError
			i.log.Error("flush", "err", err)
		}
		if res.Tenants == nil {
			res.Tenants = []TenantFlush{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(res)
	})
}
