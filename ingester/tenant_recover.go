package ingester

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// Failing a tenant and reopening its TSDB.
//
// A tenant fails when a write to its WAL failed (wal_failure.go) or when its
// TSDB could not be opened at start. A failed tenant's pushes are refused
// (503, retried by the sender); its queries are still served from memory
// until its recovery, one goroutine per failed tenant owned by Run, reopens
// it: once the disk is back above the reserve (disk.go) it drains the
// tenant's requests (tenantHealth.drain), closes the TSDB and opens it
// again. The replay rebuilds the head from the WAL alone, so the series and
// samples of pushes that failed vanish, and Prometheus' repair truncates
// the WAL at the torn record, behind which no acknowledged record lies.
// A reopen that fails (the repair needs space too) is retried with backoff;
// the other tenants serve throughout. Recoveries run one at a time, so the
// reserve need hold one repair at a time.

// Error ids of refused pushes (see the README's error ids). Never rename
// one: runbooks and alerts match on them.
const (
	idDiskFull          = "strata-disk-full"
	idWALWriteFailed    = "strata-wal-write-failed"
	idTenantUnavailable = "strata-tenant-unavailable"
)

// Reopen attempts of a failed tenant back off from recoverRetry to
// recoverRetryMax: a reopen replays the whole WAL.
const (
	recoverRetry    = 10 * time.Second
	recoverRetryMax = 5 * time.Minute
)

// recoverMinFree is the free space a recovery waits for even without a
// reserve: closing the TSDB flushes the WAL's last page and the head
// chunks' write buffer (4 MiB), and Prometheus' WAL, whose final flush
// fails, neither closes its segment nor stops its goroutine (v0.315.1), and
// its DB cannot be closed twice.
const recoverMinFree = 16 << 20

// tenantHealth is what fails and recovers one tenantDB.
type tenantHealth struct {
	// drain is held shared by every request that uses the tenant's DB,
	// from acquire to release (TryRLock: a request never waits for it), and
	// exclusively by the tenant's recovery from draining to the end.
	drain   sync.RWMutex
	failure atomic.Pointer[tenantFailure] // nil while healthy
	closed  atomic.Bool                   // the recovery closed db
	wal     walWatch                      // wal_failure.go
}

// tenantFailure is why a tenant refuses pushes.
type tenantFailure struct {
	cause error
	id    string // idWALWriteFailed or idTenantUnavailable
}

// recoveries owns the recovery goroutines.
type recoveries struct {
	mu      sync.Mutex
	running map[string]bool // tenant ids; guarded by mu
	stopped bool            // guarded by mu: no new recovery starts
	wg      sync.WaitGroup
	one     sync.Mutex    // one reopen at a time
	retry   time.Duration // first backoff; tests shorten it
	bugOnce sync.Once     // the missing-counter BUG is logged once

	refusedFailed      prometheus.Counter
	refusedUnavailable prometheus.Counter
	walFailures        prometheus.Counter
	recovered          prometheus.Counter
	openFailures       prometheus.Counter
	failedTenants      prometheus.Gauge
}

// initDisk sets up the free-space reserve and the recoveries; New calls it.
func (i *Ingester) initDisk(dataDir string, reg prometheus.Registerer) {
	f := promauto.With(reg)
	refused := f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_ingester_pushes_refused_total",
		Help: "Pushes refused with 503 before appending, by reason: disk_full (free space below -ingester.min-free-disk-bytes), tenant_failed (a WAL write of the tenant failed; its TSDB is being reopened), tenant_unavailable (the tenant's TSDB is being reopened or could not be opened).",
	}, []string{"reason"})
	i.disk = newDiskMonitor(dataDir, i.cfg.MinFreeDiskBytes, reg, refused)
	i.recov = &recoveries{
		running:            map[string]bool{},
		retry:              recoverRetry,
		refusedFailed:      refused.WithLabelValues("tenant_failed"),
		refusedUnavailable: refused.WithLabelValues("tenant_unavailable"),
		walFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_wal_write_failures_total",
			Help: "Times a tenant failed because a write to its WAL (or out-of-order WBL) failed; its pushes are refused until its TSDB is reopened.",
		}),
		recovered: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_tenant_recoveries_total",
			Help: "Failed tenants whose TSDB was reopened and that take pushes again.",
		}),
		openFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_tenant_open_failures_total",
			Help: "Tenant TSDBs that could not be opened, at start or when reopened after a failure; retried with backoff while the other tenants serve.",
		}),
		failedTenants: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_ingester_failed_tenants",
			Help: "Tenants whose pushes are refused until their TSDB is reopened.",
		}),
	}
}

// tenantUnavailableError refuses a request to a tenant whose TSDB is being
// reopened or could not be opened. It carries its gRPC status (503-class).
type tenantUnavailableError struct {
	tenant string
	f      *tenantFailure
}

func (e *tenantUnavailableError) Error() string {
	id, cause := idTenantUnavailable, "its tsdb is being reopened"
	if e.f != nil {
		id, cause = e.f.id, e.f.cause.Error()
	}
	return fmt.Sprintf("tsdb of tenant %q is unavailable until it is reopened (%s); retry later [%s]", e.tenant, cause, id)
}

func (e *tenantUnavailableError) GRPCStatus() *status.Status {
	st, _ := status.FromError(statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, 0, e.Error()))
	return st
}

// unavailable is the error of a request to u while u is drained or failed
// to open; acquire returns it.
func (u *tenantDB) unavailable() error {
	return &tenantUnavailableError{tenant: u.id, f: u.health.failure.Load()}
}

// refuseFailed returns the error of a push to a failed tenant, or nil. One
// atomic load: it runs on every push.
func (i *Ingester) refuseFailed(u *tenantDB) error {
	f := u.health.failure.Load()
	if f == nil {
		return nil
	}
	i.recov.refusedFailed.Inc()
	return statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, 0, fmt.Sprintf(
		"tenant %q refuses pushes until its tsdb is reopened: %v [%s]", u.id, f.cause, f.id))
}

// countUnavailable counts a push refused by acquire because its tenant is
// drained or did not open.
func (i *Ingester) countUnavailable(err error) {
	if _, ok := err.(*tenantUnavailableError); ok {
		i.recov.refusedUnavailable.Inc()
	}
}

// checkCommit is the verdict on a push whose Commit returned commitErr: nil
// when the push may be acknowledged, else the tenant is failed and the push
// gets a 503-class error. A Commit that succeeded is acknowledged only if
// no write to the WAL failed since the TSDB opened: such a failure may
// have torn a record that precedes this push's records.
func (i *Ingester) checkCommit(u *tenantDB, commitErr error) error {
	if commitErr == nil && !u.health.wal.failed() {
		return nil // the hot path
	}
	cause := commitErr
	if cause == nil {
		cause = fmt.Errorf("an earlier write to the wal failed; this push's records follow it")
	}
	i.failTenant(u, &tenantFailure{cause: fmt.Errorf("write to wal: %w", cause), id: idWALWriteFailed})
	return statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, 0, fmt.Sprintf(
		"commit push to tsdb of tenant %q: %v; the push is not acknowledged and the tenant's pushes are refused until its tsdb is reopened [%s]",
		u.id, cause, idWALWriteFailed))
}

// failTenant marks u failed (once) and starts its recovery.
func (i *Ingester) failTenant(u *tenantDB, f *tenantFailure) {
	if !u.health.failure.CompareAndSwap(nil, f) {
		return
	}
	i.recov.walFailures.Inc()
	i.recov.failedTenants.Inc()
	i.log.Error("tenant failed: a write to its WAL failed; refusing its pushes until its TSDB is reopened",
		"tenant", u.id, "err", f.cause, "error_id", f.id)
	i.disk.refresh()
	i.startRecovery(u, false)
}

// startRecovery starts u's recovery unless one runs or shutdown began.
// backoff delays the first reopen (u just failed to open).
func (i *Ingester) startRecovery(u *tenantDB, backoff bool) {
	r := i.recov
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.running[u.id] {
		return
	}
	r.running[u.id] = true
	r.wg.Go(func() {
		i.recoverTenant(u, backoff)
		r.mu.Lock()
		delete(r.running, u.id)
		r.mu.Unlock()
	})
}

// stopRecoveries waits for the recoveries to return; Run calls it once
// i.stopping is closed and no request is in flight.
func (i *Ingester) stopRecoveries() {
	i.recov.mu.Lock()
	i.recov.stopped = true
	i.recov.mu.Unlock()
	i.recov.wg.Wait()
}

// recoverTenant reopens old's TSDB and puts it in old's place; it returns
// once done or when the ingester stops.
func (i *Ingester) recoverTenant(old *tenantDB, backoff bool) {
	wait := i.recov.retry
	drained := false
	for {
		if backoff {
			if !i.sleep(wait) {
				return
			}
			wait = min(2*wait, recoverRetryMax)
		}
		backoff = true
		for !i.disk.hasRoom(recoverMinFree) {
			if !i.sleep(diskInterval) {
				return
			}
		}
		u, err := i.reopen(old, &drained)
		if err == nil {
			i.mu.Lock()
			i.dbs[old.id] = u
			i.mu.Unlock()
			i.recov.recovered.Inc()
			i.recov.failedTenants.Dec()
			i.log.Info("tenant recovered: its TSDB is reopened and takes pushes again", "tenant", old.id, "series", u.db.Head().NumSeries())
			return
		}
		i.recov.openFailures.Inc()
		old.health.failure.Store(&tenantFailure{cause: err, id: idTenantUnavailable})
		i.log.Error("reopening tenant TSDB failed; retrying", "tenant", old.id, "err", err, "retry_in", wait)
	}
}

// reopen drains old (once), closes its TSDB (once) and opens it anew.
func (i *Ingester) reopen(old *tenantDB, drained *bool) (*tenantDB, error) {
	i.recov.one.Lock()
	defer i.recov.one.Unlock()
	if !*drained {
		// From here on acquire refuses old; snapshot skips it.
		old.health.drain.Lock()
		old.ready.Store(false)
		*drained = true
		if old.db != nil {
			old.closeShipper()
			if err := old.db.Close(); err != nil {
				i.log.Warn("closing failed tenant TSDB", "tenant", old.id, "err", err)
			}
			old.health.closed.Store(true)
		}
	}
	u := &tenantDB{id: old.id, opened: make(chan struct{})}
	i.openDB(u)
	if u.err != nil {
		return nil, fmt.Errorf("reopen tsdb of tenant %q: %w", old.id, u.err)
	}
	return u, nil
}

// sleep waits d or until shutdown starts; it reports whether to go on.
func (i *Ingester) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-i.stopping:
		return false
	case <-t.C:
		return true
	}
}

// tenantOpenFailed keeps u, whose TSDB did not open at start, as a failed
// tenant: requests to it are refused while its recovery retries.
func (i *Ingester) tenantOpenFailed(u *tenantDB) {
	u.health.failure.Store(&tenantFailure{cause: u.err, id: idTenantUnavailable})
	i.recov.openFailures.Inc()
	i.recov.failedTenants.Inc()
	i.log.Error("tenant TSDB did not open; its requests are refused while reopening is retried, the other tenants serve",
		"tenant", u.id, "err", u.err, "error_id", idTenantUnavailable)
	i.startRecovery(u, true)
}
