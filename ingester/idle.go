package ingester

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Cutting idle heads. The TSDB cuts a block only once its head spans one
// and a half block ranges, which takes new samples: the head of a tenant
// that stopped pushing would stay in memory and in the WAL, unshipped,
// until it pushes again. Every -blocks-storage.tsdb.head-compaction-interval
// the compaction loop (compact.go) cuts the whole head of each tenant that received no push
// for -blocks-storage.tsdb.head-compaction-idle-timeout, as a flush does
// (ship.go: cutHeadIf), and ships it; the TSDB then truncates the WAL at
// its next compaction. Idleness is judged while no push runs (the flush
// barrier), so a head receiving pushes is never cut this way.

// idleMetrics count the idle loop's cuts.
type idleMetrics struct {
	cuts, failures prometheus.Counter
}

func newIdleMetrics(reg prometheus.Registerer) *idleMetrics {
	f := promauto.With(reg)
	return &idleMetrics{
		cuts: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_idle_head_cuts_total",
			Help: "Heads cut into blocks whole because their tenant pushed nothing for -blocks-storage.tsdb.head-compaction-idle-timeout.",
		}),
		failures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_idle_head_cut_failures_total",
			Help: "Idle heads whose cut failed (logged); retried at the next check.",
		}),
	}
}

// markPush records a push to u at t; Push calls it holding u.ship.pushing
// shared. It writes at most once a millisecond, so that concurrent pushes
// of one tenant seldom write the same cache line.
func (u *tenantDB) markPush(t time.Time) {
	ns := t.UnixNano()
	if ns-u.lastPush.Load() >= int64(time.Millisecond) {
		u.lastPush.Store(ns)
	}
}

// cutIdleHeads cuts and ships, one tenant at a time, the heads that hold
// samples and received no push since now minus the idle timeout. It
// returns how many it cut; failures are logged and counted.
func (i *Ingester) cutIdleHeads(ctx context.Context, now time.Time) int {
	idleSince := now.Add(-i.cfg.HeadCompactionIdleTimeout).UnixNano()
	var n int
	for _, u := range i.snapshot(nil) {
		if ctx.Err() != nil {
			break
		}
		cut, err := i.cutIfIdle(ctx, u, idleSince)
		if cut {
			n++
		}
		if err != nil && ctx.Err() == nil {
			i.idle.failures.Inc()
			i.log.Warn("cutting an idle head failed; retrying at the next check", "tenant", u.id, "err", err)
		}
	}
	return n
}

// cutIfIdle cuts u's head if it received no push after idleSince (Unix
// ns) and ships the blocks; a tenant being reopened, closed or refused
// after a failed WAL write is left alone.
func (i *Ingester) cutIfIdle(ctx context.Context, u *tenantDB, idleSince int64) (bool, error) {
	if !u.health.drain.TryRLock() {
		return false, nil // being reopened (tenant_recover.go)
	}
	defer u.health.drain.RUnlock()
	if u.health.closed.Load() || u.health.failure.Load() != nil {
		return false, nil
	}
	if u.lastPush.Load() > idleSince {
		return false, nil // the common case, without the barrier
	}
	cut, err := i.cutHeadIf(ctx, u, func() bool { return u.lastPush.Load() <= idleSince })
	if !cut || err != nil {
		return cut, err
	}
	i.idle.cuts.Inc()
	i.log.Info("cut the head of an idle tenant into blocks", "tenant", u.id, "idle_timeout", i.cfg.HeadCompactionIdleTimeout)
	if u.ship.shipper != nil {
		// Ship at once rather than at the ship loop's next round. A
		// failure here is the ship loop's to retry (and count), not a
		// failed cut: the head is cut.
		if _, err := u.ship.shipper.Sync(ctx); err != nil && ctx.Err() == nil {
			i.log.Warn("shipping the blocks of an idle tenant failed; the ship loop retries", "tenant", u.id, "err", err)
		}
	}
	return true, nil
}
