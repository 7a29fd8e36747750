package ingester

import (
	"math"
	"sync"
	"time"
)

// The ingestion rate is the EWMA of Cortex and Mimir: every 15s tick the
// samples appended during the tick, per second, move the rate by a fifth of
// their difference to it, so a step change shows about 70% after a minute.
const (
	rateTick  = 15 * time.Second
	rateAlpha = 0.2
)

// ingestRates keeps one ingestion rate per tenant. Its zero value is ready;
// it is safe for concurrent use. Ticks are applied lazily, on the next add
// or read, with exactly the result a ticker would give: no goroutine.
type ingestRates struct {
	mu       sync.RWMutex
	byTenant map[string]*ewmaRate // guarded by mu
}

// add counts n samples appended for tenant at now.
func (r *ingestRates) add(tenantID string, n int, now time.Time) {
	if n <= 0 {
		return
	}
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
			r.byTenant[tenantID] = e
		}
		r.mu.Unlock()
	}
	e.add(int64(n), now)
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
}

func (e *ewmaRate) add(n int64, now time.Time) {
	e.mu.Lock()
	e.advance(now)
	if e.tickStart.IsZero() {
		e.tickStart = now
	}
	e.pending += n
	e.mu.Unlock()
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
