package auth

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"
)

// Password checks are bcrypt: tens of milliseconds of CPU each, by design.
// Unchecked, 29 random basic-auth attempts a second took 1.67 cores and
// moved another tenant's p50 from 0.7 ms to 807 ms. Three bounds:
//   - a password that passed is cached (checkPassword), and bearer tokens
//     never touch bcrypt, so agents that authenticate once cost nothing;
//   - each source address and user gets failureBurst failed checks, then
//     one per failureEvery; beyond that its uncached basic credentials are
//     refused with 429 before any bcrypt (per user too, so that agents
//     behind one load balancer are not locked out by one wrong password);
//   - at most half the cores run bcrypt at once (at least one): a flood
//     from many addresses queues behind the others' work instead of taking
//     every core.

const (
	failureBurst      = 10
	failureEvery      = time.Second
	maxFailureSources = 10_000 // addresses remembered; beyond, the stalest go
)

// failures is the failed-check budget of each source address and user.
type failures struct {
	mu      sync.Mutex
	sources map[string]*failureBudget
	now     func() time.Time
}

type failureBudget struct {
	tokens float64
	last   time.Time
}

func newFailures(now func() time.Time) *failures {
	return &failures{sources: map[string]*failureBudget{}, now: now}
}

// sourceOf is the address a request came from, without its port.
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allowed reports whether src may have a password checked now: it has
// failures left, refilled at one per failureEvery up to failureBurst.
func (f *failures) allowed(src string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.sources[src]
	if b == nil {
		return true, 0
	}
	f.refill(b)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(failureEvery))
}

// failed spends one of src's failures.
func (f *failures) failed(src string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.sources[src]
	if b == nil {
		if len(f.sources) >= maxFailureSources {
			f.forgetStalest()
		}
		b = &failureBudget{tokens: failureBurst, last: f.now()}
		f.sources[src] = b
	}
	f.refill(b)
	b.tokens = max(0, b.tokens-1)
}

func (f *failures) refill(b *failureBudget) {
	now := f.now()
	b.tokens = min(failureBurst, b.tokens+float64(now.Sub(b.last))/float64(failureEvery))
	b.last = now
}

// forgetStalest drops the sources that are back to a full budget, or,
// when none is, the one that failed longest ago.
func (f *failures) forgetStalest() {
	var oldest string
	var oldestAt time.Time
	now := f.now()
	for src, b := range f.sources {
		if b.tokens+float64(now.Sub(b.last))/float64(failureEvery) >= failureBurst {
			delete(f.sources, src)
			continue
		}
		if oldest == "" || b.last.Before(oldestAt) {
			oldest, oldestAt = src, b.last
		}
	}
	if len(f.sources) >= maxFailureSources {
		delete(f.sources, oldest)
	}
}

// bcryptSlots bounds the bcrypt checks running at once.
func bcryptSlots() chan struct{} {
	return make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
}
