package distributor

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-metrics/strata/limits"
)

// Ids of the ingestion rate limit's rejections.
const (
	idTenantRateLimit   = "strata-tenant-rate-limit"
	idTenantBurstTooLow = "strata-tenant-burst-too-small"
	// reasonRateLimited labels strata_distributor_discarded_samples_total
	// for samples of pushes refused by the rate limit.
	reasonRateLimited = "rate_limited"
)

// rateLimiter is the per-tenant ingestion rate limit: one token bucket per
// tenant, filled at the tenant's rate (divided by the healthy distributors
// under the global strategy) up to its burst size, emptied by the samples
// of every accepted push. A push takes all its tokens or none, so a refused
// push stores nothing. Goroutine-safe.
//
// Buckets of idle tenants are forgotten, so that a churning tenant
// population does not grow the map forever: every bucketIdleTimeout / 2 one
// push sweeps out the buckets idle for bucketIdleTimeout that have refilled
// to their burst. A full bucket is exactly what a tenant's first push
// creates, so forgetting one changes no decision; a bucket still refilling
// (a tiny rate under a big burst) is kept until it is full.
type rateLimiter struct {
	healthy   func() int   // healthy distributors; never nil
	buckets   sync.Map     // tenant id -> *bucket
	nextSweep atomic.Int64 // unix ns of the next sweep
}

// bucketIdleTimeout is how long a tenant's bucket is kept without a push.
// A full bucket is as good as a new one, so the only cost of forgetting it
// is one allocation on the tenant's next push: ten minutes is far longer
// than any sender's push interval (seconds; a minute for the laziest
// agent), so steady tenants keep theirs.
const bucketIdleTimeout = 10 * time.Minute

type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second here; 0 means no limit
	burst  float64
	tokens float64
	last   time.Time
	gone   bool // swept out of the map: take a new bucket
}

// newRateLimiter returns a limiter; healthy gives the number of healthy
// distributors for the global strategy (nil: 1).
func newRateLimiter(healthy func() int) *rateLimiter {
	if healthy == nil {
		healthy = func() int { return 1 }
	}
	return &rateLimiter{healthy: healthy}
}

// localRate is this distributor's share of lim's rate and how many
// distributors share it.
func (r *rateLimiter) localRate(lim *limits.Limits) (float64, int) {
	if lim.IngestionRateStrategy != limits.StrategyGlobal {
		return lim.IngestionRate, 1
	}
	n := max(1, r.healthy())
	return lim.IngestionRate / float64(n), n
}

// allow takes n tokens from tenantID's bucket at now, or reports why not:
// a *LimitedError when the bucket is short (the push will pass later), a
// *BadInputError when n exceeds the burst (it never will). The bucket
// follows lim: a changed rate or burst applies from this call on.
func (r *rateLimiter) allow(tenantID string, lim *limits.Limits, now time.Time, n int) error {
	if n == 0 || lim.IngestionRate <= 0 {
		return nil
	}
	r.maybeSweep(now)
	rate, shares := r.localRate(lim)
	burst := float64(lim.IngestionBurstSize)
	var b *bucket
	for {
		v, ok := r.buckets.Load(tenantID)
		if !ok {
			v, _ = r.buckets.LoadOrStore(strings.Clone(tenantID), &bucket{rate: rate, burst: burst, tokens: burst, last: now})
		}
		b = v.(*bucket)
		b.mu.Lock()
		if !b.gone {
			break
		}
		b.mu.Unlock() // swept meanwhile: its successor decides
	}
	if b.rate != rate || b.burst != burst {
		b.rate, b.burst = rate, burst
		b.tokens = min(b.tokens, burst)
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
		b.last = now
	}
	if float64(n) <= b.tokens {
		b.tokens -= float64(n)
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	if float64(n) > burst {
		return &BadInputError{Msg: fmt.Sprintf("push of %d samples for tenant %q exceeds the ingestion burst size %d and can never pass: send smaller batches (Prometheus: queue_config max_samples_per_send) or raise the burst (-%s, override %q) [%s]",
			n, tenantID, lim.IngestionBurstSize, limits.FlagIngestionBurstSize, "ingestion_burst_size", idTenantBurstTooLow)}
	}
	global := ""
	if shares > 1 {
		global = fmt.Sprintf(", shared by %d healthy distributors: %g samples/s each", shares, rate)
	}
	return &LimitedError{Msg: fmt.Sprintf("ingestion rate limit (%g samples/s, burst %d%s) exceeded for tenant %q: %d samples in this request (-%s, override %q) [%s]",
		lim.IngestionRate, lim.IngestionBurstSize, global, tenantID, n, limits.FlagIngestionRate, "ingestion_rate", idTenantRateLimit)}
}

// maybeSweep forgets idle, refilled buckets when the sweep is due; one
// caller does it.
func (r *rateLimiter) maybeSweep(now time.Time) {
	ns := now.UnixNano()
	next := r.nextSweep.Load()
	if ns < next || !r.nextSweep.CompareAndSwap(next, ns+int64(bucketIdleTimeout/2)) {
		return
	}
	r.buckets.Range(func(k, v any) bool {
		b := v.(*bucket)
		b.mu.Lock()
		idle := now.Sub(b.last)
		if idle >= bucketIdleTimeout && (b.rate <= 0 || b.tokens+idle.Seconds()*b.rate >= b.burst) {
			b.gone = true
			r.buckets.Delete(k)
		}
		b.mu.Unlock()
		return true
	})
}

// checkIngestionRate applies the tenant's rate limit to what validation
// kept of st.req. When it refuses, st.req is emptied (nothing of it is
// sent, nor counted as received) and its samples are counted as discarded.
func (d *Distributor) checkIngestionRate(tenantID string, st *pushState) error {
	samples, histograms, _ := st.req.SampleCount()
	n := samples + histograms
	err := d.rate.allow(tenantID, d.limits.For(tenantID), d.now(), n)
	if err == nil {
		return nil
	}
	d.m.discardedSamples.WithLabelValues(st.tenantLabel, reasonRateLimited).Add(float64(n))
	st.req.Series = st.req.Series[:0]
	st.req.Metadata = st.req.Metadata[:0]
	return err
}
