package ingester

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The ingestion rate is the EWMA of Cortex and Mimir: every 15s tick the
// samples appended during the tick, per second, move the rate by a fifth of
// their difference to it, so a step change shows about 70% after a minute.
const (
	rateTick  = 15 * time.Second
	rateAlpha = 0.2
)

// rateIdleTimeout is how long a tenant's rate is kept without a sample:
// after 30 minutes (120 ticks) the EWMA has decayed to 0.8^120 ≈ 2e-12 of
// its value, so forgetting it changes nothing a client could see, and a
// churning tenant population does not grow the map forever.
const rateIdleTimeout = 30 * time.Minute

// ingestRates keeps one ingestion rate per tenant. Its zero value is ready;
// it is safe for concurrent use. Ticks are applied lazily, on the next add
// or read, with exactly the result a ticker would give: no goroutine. The
// rates of tenants idle for rateIdleTimeout are forgotten by an add, at
// most every rateIdleTimeout / 2.
type ingestRates struct {
	mu        sync.RWMutex
	byTenant  map[string]*ewmaRate // guarded by mu
	nextSweep atomic.Int64         // unix ns of the next sweep
}

// add counts n samples appended for tenant at now.
func (r *ingestRates) add(tenantID string, n int, now time.Time) {
	if n <= 0 {
		return
	}
	r.forgetIdle(now)
	for {
		r.mu.RLock()
		e := r.byTenant[tenantID]
		r.mu.RUnlock()
		if e == nil {
			r.mu.Lock()
			if r.byTenant == nil {
				r.byTenant = map[string]*ewmaRate{}
			}
			if e = r.byTenant[tenantID]; e == nil {
				e = &ewmaRate{}
				r.byTenant[strings.Clone(tenantID)] = e
			}
			r.mu.Unlock()
		}
		if e.add(int64(n), now) {
			return
		}
		// Forgotten meanwhile: count into its successor.
	}
}

// forgetIdle drops the rates of tenants idle for rateIdleTimeout when a
// sweep is due; one caller does it.
func (r *ingestRates) forgetIdle(now time.Time) {
	ns := now.UnixNano()
	next := r.nextSweep.Load()
	if ns < next || !r.nextSweep.CompareAndSwap(next, ns+int64(rateIdleTimeout/2)) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, e := range r.byTenant {
		e.mu.Lock()
		if now.Sub(e.lastAdd) >= rateIdleTimeout {
			e.gone = true
			delete(r.byTenant, id)
		}
		e.mu.Unlock()
	}
}

// rate returns tenant's rate in samples per second as of the last tick
// before now; 0 for a tenant never counted.
func (r *ingestRates) rate(tenantID string, now time.Time) float64 {
	r.mu.RLock()
	e := r.byTenant[tenantID]
	r.mu.RUnlock()
	if e == nil {
		return 0
	}
	return e.rate(now)
}

// ewmaRate is one exponentially weighted moving average of a count per
// second, over ticks of rateTick that start at its first add.
type ewmaRate struct {
	mu        sync.Mutex
	tickStart time.Time // start of the current tick; zero before the first add
	pending   int64     // counted in the current tick
	value     float64   // as of the last completed tick
	ticked    bool      // value holds at least one tick
	lastAdd   time.Time // of the last add, for forgetIdle
	gone      bool      // forgotten by forgetIdle: count elsewhere
}

// add counts n at now; false when e was forgotten (nothing counted).
func (e *ewmaRate) add(n int64, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone {
		return false
	}
	e.advance(now)
	if e.tickStart.IsZero() {
		e.tickStart = now
	}
	e.pending += n
	e.lastAdd = now
	return true
}

func (e *ewmaRate) rate(now time.Time) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advance(now)
	return e.value
}

// advance applies every tick that ended by now: the first with the pending
// count, the others (nothing was added in them) as decay.
func (e *ewmaRate) advance(now time.Time) {
	if e.tickStart.IsZero() {
		return
	}
	ticks := int64(now.Sub(e.tickStart) / rateTick)
	if ticks <= 0 {
		return
	}
	instant := float64(e.pending) / rateTick.Seconds()
	if e.ticked {
		e.value += rateAlpha * (instant - e.value)
	} else {
		e.value, e.ticked = instant, true
	}
	if ticks > 1 {
		e.value *= math.Pow(1-rateAlpha, float64(ticks-1))
	}
	e.pending = 0
	e.tickStart = e.tickStart.Add(time.Duration(ticks) * rateTick)
}
