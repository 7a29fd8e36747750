package distributor

import (
	"fmt"
	"io"
	"net/http"
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
	// refused is the size of the tenant's last push refused for want of
	// tokens (never one over the burst, which gets 400), 0 after an
	// accepted push or a change of the limits: refuseEarly turns the
	// tenant's pushes away unread while the bucket cannot hold it.
	refused int
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
	rate, shares := r.localRate(lim)
	burst := float64(lim.IngestionBurstSize)
	b := r.lock(tenantID, rate, burst, now)
	if float64(n) <= b.tokens {
		b.tokens -= float64(n)
		b.refused = 0
		b.mu.Unlock()
		return nil
	}
	if float64(n) <= burst {
		b.refused = n // it will fit later; until then refuseEarly answers
	}
	b.mu.Unlock()
	if float64(n) > burst {
		return &BadInputError{Msg: fmt.Sprintf("push of %d samples for tenant %q exceeds the ingestion burst size %d and can never pass: send smaller batches (Prometheus: queue_config max_samples_per_send) or raise the burst (-%s, override %q) [%s]",
			n, tenantID, lim.IngestionBurstSize, limits.FlagIngestionBurstSize, "ingestion_burst_size", idTenantBurstTooLow)}
	}
	return rateLimited(tenantID, lim, rate, shares, fmt.Sprintf("%d samples in this request", n))
}

// lock returns tenantID's bucket (a full one if it has none), locked,
// following rate and burst and refilled up to now.
func (r *rateLimiter) lock(tenantID string, rate, burst float64, now time.Time) *bucket {
	r.maybeSweep(now)
	for {
		v, ok := r.buckets.Load(tenantID)
		if !ok {
			v, _ = r.buckets.LoadOrStore(strings.Clone(tenantID), &bucket{rate: rate, burst: burst, tokens: burst, last: now})
		}
		b := v.(*bucket)
		b.mu.Lock()
		if !b.gone {
			b.follow(rate, burst, now)
			return b
		}
		b.mu.Unlock() // swept meanwhile: its successor decides
	}
}

// follow applies a changed rate or burst to b and refills it up to now.
// The caller holds b.mu.
func (b *bucket) follow(rate, burst float64, now time.Time) {
	if b.rate != rate || b.burst != burst {
		b.rate, b.burst = rate, burst
		b.tokens = min(b.tokens, burst)
		b.refused = 0 // measured against other limits: read the next push
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(burst, b.tokens+dt.Seconds()*rate)
		b.last = now
	}
}

// refuseEarly is the ingestion rate limit before the body is read: it
// refuses (with the *LimitedError allow would give) a push of a tenant
// whose bucket cannot hold, right now, the tenant's last refused push, and
// returns that push's size. It takes no tokens and creates no bucket, so
// a new or idle tenant (a full bucket, or none) is always read, and so is
// every push once the bucket has refilled to that size.
//
// The size of the last refused push stands in for this push's, which is
// unknown until the body is decoded: senders batch evenly (Prometheus:
// max_samples_per_send), so the guess is right for a flooding client, and
// where it is wrong a push that would have fitted gets 429 and is resent a
// little later, never dropped. A push over the burst still gets its 400:
// refused sizes are at most the burst, so the bucket refills past them and
// the push is read. Without this a refused push costs what an accepted one
// does (read, snappy, decode, validate), and a tenant flooding 429s at its
// distributor would take the CPU of every other tenant's pushes.
func (r *rateLimiter) refuseEarly(tenantID string, lim *limits.Limits, now time.Time) (int, error) {
	if lim.IngestionRate <= 0 {
		return 0, nil
	}
	v, ok := r.buckets.Load(tenantID)
	if !ok {
		return 0, nil
	}
	b := v.(*bucket)
	rate, shares := r.localRate(lim)
	burst := float64(lim.IngestionBurstSize)
	b.mu.Lock()
	if b.gone || b.refused == 0 {
		b.mu.Unlock()
		return 0, nil
	}
	b.follow(rate, burst, now)
	n := b.refused
	if n == 0 || float64(n) <= b.tokens {
		b.mu.Unlock()
		return 0, nil
	}
	b.mu.Unlock()
	return n, rateLimited(tenantID, lim, rate, shares, fmt.Sprintf(
		"its last refused request had %d samples and still does not fit, so this one was refused unread", n))
}

// rateLimited is the 429 of the ingestion rate limit; what says what did
// not fit.
func rateLimited(tenantID string, lim *limits.Limits, rate float64, shares int, what string) error {
	global := ""
	if shares > 1 {
		global = fmt.Sprintf(", shared by %d healthy distributors: %g samples/s each", shares, rate)
	}
	return &LimitedError{Msg: fmt.Sprintf("ingestion rate limit (%g samples/s, burst %d%s) exceeded for tenant %q: %s (-%s, override %q) [%s]",
		lim.IngestionRate, lim.IngestionBurstSize, global, tenantID, what, limits.FlagIngestionRate, "ingestion_rate", idTenantRateLimit)}
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
	d.m.rateLimitedPushes.WithLabelValues(st.tenantLabel, limitedIngestionRate).Inc()
	st.req.Series = st.req.Series[:0]
	st.req.Metadata = st.req.Metadata[:0]
	return err
}

// Reasons of strata_distributor_rate_limited_pushes_total.
const (
	limitedIngestionRate       = "ingestion_rate"        // refused after decoding and validation
	limitedIngestionRateUnread = "ingestion_rate_unread" // refused before its body was read (refuseEarly)
	limitedInflightBytes       = "inflight_bytes"        // refused after reading: the process held too many push bytes
)

// refuseEarly applies the tenant's ingestion rate limit before r's body is
// read (rateLimiter.refuseEarly says when). A refused body is drained
// rather than decoded, so that the connection stays open for the sender's
// next push: reading tens of kilobytes costs microseconds, where closing
// would make the sender reconnect (and may cut its write short: it then
// sees a reset connection instead of the 429). Its samples are counted as
// discarded at the size of the tenant's last refused push, the only size
// known: the counter's rate then stays what it was before early refusal.
func (d *Distributor) refuseEarly(r *http.Request, tenantID string) error {
	n, err := d.rate.refuseEarly(tenantID, d.limits.For(tenantID), d.now())
	if err == nil {
		return nil
	}
	label := d.tenantLabels.Value(tenantID)
	d.m.discardedSamples.WithLabelValues(label, reasonRateLimited).Add(float64(n))
	d.m.rateLimitedPushes.WithLabelValues(label, limitedIngestionRateUnread).Inc()
	d.drain(r)
	return err
}

// drain reads and discards what is left of a refused push's body, so that
// net/http can keep the connection for the next request. It reads at most
// what the push path would have read; beyond that net/http closes the
// connection. (A pooled 64 KiB buffer instead of io.Discard's 8 KiB, for
// fewer reads from the socket, measured no different in
// BenchmarkRefusedPushLoopback.)
func (d *Distributor) drain(r *http.Request) {
	_, _ = io.CopyN(io.Discard, r.Body, int64(d.maxCompressed)+1)
}
