package distributor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

func TestRateLimiterAllow(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 100, 200, limits.StrategyLocal
	global := lim
	global.IngestionRateStrategy = limits.StrategyGlobal
	faster := lim
	faster.IngestionRate, faster.IngestionBurstSize = 1000, 2000
	off := lim
	off.IngestionRate = 0

	type step struct {
		lim     *limits.Limits
		at      time.Duration // since the start
		n       int
		wantErr string // "" | "429" | "400"
	}
	for _, tc := range []struct {
		name    string
		healthy int
		steps   []step
	}{
		{"burst then refused", 1, []step{{&lim, 0, 150, ""}, {&lim, 0, 50, ""}, {&lim, 0, 1, "429"}}},
		{"refills at the rate", 1, []step{{&lim, 0, 200, ""}, {&lim, time.Second, 101, "429"}, {&lim, time.Second, 100, ""}}},
		{"refill capped at burst", 1, []step{{&lim, 0, 200, ""}, {&lim, time.Hour, 201, "400"}, {&lim, time.Hour, 200, ""}, {&lim, time.Hour, 1, "429"}}},
		{"refused push takes nothing", 1, []step{{&lim, 0, 150, ""}, {&lim, 0, 100, "429"}, {&lim, 0, 50, ""}}},
		{"over the burst never passes", 1, []step{{&lim, 0, 201, "400"}, {&lim, 0, 200, ""}}},
		{"global divides the rate", 4, []step{{&global, 0, 200, ""}, {&global, time.Second, 26, "429"}, {&global, time.Second, 25, ""}}},
		{"override raises the limit", 1, []step{{&lim, 0, 200, ""}, {&lim, 0, 1, "429"}, {&faster, time.Second, 1100, "429"}, {&faster, 2 * time.Second, 1100, ""}}},
		{"rate 0 is no limit", 1, []step{{&off, 0, 1 << 30, ""}}},
		{"empty push always passes", 1, []step{{&lim, 0, 200, ""}, {&lim, 0, 0, ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRateLimiter(func() int { return tc.healthy })
			for i, s := range tc.steps {
				err := r.allow("a", s.lim, testNow.Add(s.at), s.n)
				switch s.wantErr {
				case "":
					require.NoError(t, err, "step %d", i)
				case "429":
					require.Equal(t, http.StatusTooManyRequests, httpStatus(err), "step %d: %v", i, err)
				case "400":
					require.Equal(t, http.StatusBadRequest, httpStatus(err), "step %d: %v", i, err)
				}
			}
		})
	}
}

// buckets returns the tenants with a bucket, sorted.
func (r *rateLimiter) bucketTenants() []string {
	var ids []string
	r.buckets.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	slices.Sort(ids)
	return ids
}

func TestRateLimiterForgetsIdleBuckets(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 100, 200, limits.StrategyLocal
	slow := lim // refills its burst in 2000s, over half an hour
	slow.IngestionRate = 0.1

	type step struct {
		at      time.Duration // since the start
		tenant  string
		lim     *limits.Limits
		n       int
		wantErr string // "" | "429"
	}
	for _, tc := range []struct {
		name        string
		steps       []step
		wantBuckets []string // after the last step
	}{
		{"active tenants keep their buckets", []step{
			{0, "a", &lim, 1, ""}, {0, "b", &lim, 1, ""},
			{9 * time.Minute, "a", &lim, 1, ""}, {9 * time.Minute, "b", &lim, 1, ""},
			{18 * time.Minute, "a", &lim, 1, ""},
		}, []string{"a", "b"}},
		{"a tenant idle 10m is forgotten by the next sweep", []step{
			{0, "a", &lim, 1, ""}, {0, "b", &lim, 1, ""},
			{11 * time.Minute, "b", &lim, 1, ""},
		}, []string{"b"}},
		{"a bucket still refilling is kept until full", []step{
			{0, "a", &slow, 200, ""}, {0, "b", &lim, 1, ""},
			{11 * time.Minute, "b", &lim, 1, ""}, // a has 66 of 200 tokens
			{22 * time.Minute, "b", &lim, 1, ""}, // 132 of 200
		}, []string{"a", "b"}},
		{"a refilled slow bucket is forgotten", []step{
			{0, "a", &slow, 200, ""}, {0, "b", &lim, 1, ""},
			{34 * time.Minute, "b", &lim, 1, ""}, // 204 of 200: full
		}, []string{"b"}},
		{"a forgotten tenant starts with a full burst, as before", []step{
			{0, "a", &lim, 200, ""}, {0, "a", &lim, 1, "429"},
			{11 * time.Minute, "b", &lim, 1, ""},
			{11 * time.Minute, "a", &lim, 200, ""}, {11 * time.Minute, "a", &lim, 1, "429"},
		}, []string{"a", "b"}},
		{"tenants without a rate have no bucket", []step{
			{0, "a", &limits.Limits{}, 1 << 20, ""},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRateLimiter(nil)
			for i, s := range tc.steps {
				err := r.allow(s.tenant, s.lim, testNow.Add(s.at), s.n)
				if s.wantErr == "" {
					require.NoError(t, err, "step %d", i)
				} else {
					require.Equal(t, http.StatusTooManyRequests, httpStatus(err), "step %d: %v", i, err)
				}
			}
			require.Equal(t, tc.wantBuckets, r.bucketTenants())
		})
	}
}

func TestRateLimiterSweptBucketIsNotUsed(t *testing.T) {
	// A push that loaded a bucket just before a sweep removed it must not
	// spend tokens in it: they would be lost, and the tenant could exceed
	// its burst. It takes the new bucket instead.
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 100, 200, limits.StrategyLocal
	r := newRateLimiter(nil)
	require.NoError(t, r.allow("a", &lim, testNow, 1))
	v, _ := r.buckets.Load("a")
	old := v.(*bucket)

	later := testNow.Add(time.Minute) // no sweep due yet
	old.mu.Lock()
	done := make(chan error, 1)
	// The push may load old, then wait for it while the sweep (simulated
	// here) removes it.
	go func() { done <- r.allow("a", &lim, later, 200) }()
	old.gone = true
	r.buckets.Delete("a")
	old.mu.Unlock()
	require.NoError(t, <-done)

	v, _ = r.buckets.Load("a")
	require.NotSame(t, old, v, "the swept bucket was used")
	require.Equal(t, float64(0), v.(*bucket).tokens)
	require.Equal(t, float64(199), old.tokens, "the swept bucket changed")
}

// rateHarness is a Distributor with a rate limit, a clock the test moves
// and overrides read from a file.
type rateHarness struct {
	*harness
	now  atomic.Int64 // unix ns
	file string
	ovr  *limits.Overrides
}

func newRateHarness(t *testing.T, lim limits.Limits, overrides string, healthy func() int) *rateHarness {
	t.Helper()
	h := &rateHarness{file: filepath.Join(t.TempDir(), "runtime.yaml")}
	h.now.Store(testNow.UnixNano())
	require.NoError(t, os.WriteFile(h.file, []byte(overrides), 0o644))
	ovr, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: h.file, ReloadPeriod: time.Hour}, lim, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, ovr.Load())
	h.ovr = ovr
	ings, clients, fr := newFakes(1)
	h.harness = &harness{ings: ings, ring: fr, reg: prometheus.NewRegistry()}
	d, err := New(defaultConfig(), Deps{
		Ring: fr, Clients: clients, Limits: ovr,
		Tenants:             tenant.Resolver{MultitenancyEnabled: true},
		Log:                 slog.New(slog.DiscardHandler),
		Reg:                 h.reg,
		Now:                 func() time.Time { return time.Unix(0, h.now.Load()) },
		HealthyDistributors: healthy,
	})
	require.NoError(t, err)
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return h
}

// pushAs pushes n one-sample series of metric for tenantID.
func (h *rateHarness) pushAs(t *testing.T, tenantID, metric string, n int) (int, string) {
	t.Helper()
	ts := make([]prompb.TimeSeries, n)
	ms := time.Unix(0, h.now.Load()).UnixMilli()
	for i := range ts {
		ts[i] = prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: metric}, {Name: "i", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: ms}},
		}
	}
	req := newPushRequest(encode(t, &prompb.WriteRequest{Timeseries: ts}))
	req.Header.Set("X-Scope-OrgID", tenantID)
	return h.do(t, req)
}

// stored counts the series the fake ingester received for tenantID.
func (h *rateHarness) stored(t *testing.T, tenantID string) int {
	t.Helper()
	h.ings[0].mu.Lock()
	defer h.ings[0].mu.Unlock()
	n := 0
	for _, p := range h.ings[0].pushes {
		if p.Tenant == tenantID {
			var one prompb.WriteRequest
			require.NoError(t, one.Unmarshal(p.WriteRequest))
			n += len(one.Timeseries)
		}
	}
	return n
}

func (h *rateHarness) discarded(tenantID string) float64 {
	return testutil.ToFloat64(h.d.m.discardedSamples.WithLabelValues(tenantID, reasonRateLimited))
}

func TestPushRateLimit(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 10, 100, limits.StrategyLocal
	h := newRateHarness(t, lim, "overrides:\n  big:\n    ingestion_rate: 1000\n    ingestion_burst_size: 5000\n", nil)

	code, body := h.pushAs(t, "a", "up", 80)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = h.pushAs(t, "a", "up", 30)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, `ingestion rate limit (10 samples/s, burst 100) exceeded for tenant "a": 30 samples in this request (-distributor.ingestion-rate-limit, override "ingestion_rate") [strata-tenant-rate-limit]`, body)
	require.Equal(t, 80, h.stored(t, "a"), "nothing of the refused push is stored; the earlier one is intact")
	require.Equal(t, 30.0, h.discarded("a"))
	require.Equal(t, 80.0, testutil.ToFloat64(h.d.m.receivedSamples.WithLabelValues("a")), "refused samples are not counted received")

	// Another tenant, and one with an override, are not slowed down by a.
	code, body = h.pushAs(t, "b", "up", 100)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = h.pushAs(t, "big", "up", 3000)
	require.Equal(t, http.StatusNoContent, code, body)
	require.Equal(t, 0.0, h.discarded("b")+h.discarded("big"))

	// Bigger than the burst: it can never pass, so 400.
	code, body = h.pushAs(t, "b", "up", 101)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `push of 101 samples for tenant "b"`)
	require.Contains(t, body, `exceeds the ingestion burst size 100 and can never pass`)
	require.Contains(t, body, `(-distributor.ingestion-burst-size, override "ingestion_burst_size") [strata-tenant-burst-too-small]`)

	// A second later a's bucket has 10 more tokens.
	h.now.Add(int64(time.Second))
	code, _ = h.pushAs(t, "a", "up", 30)
	require.Equal(t, http.StatusNoContent, code)
	require.Equal(t, 110, h.stored(t, "a"))

	// An override written to the file applies on reload, without a restart.
	require.NoError(t, os.WriteFile(h.file, []byte("overrides:\n  a:\n    ingestion_rate: 1000\n    ingestion_burst_size: 5000\n"), 0o644))
	code, _ = h.pushAs(t, "a", "up", 90)
	require.Equal(t, http.StatusTooManyRequests, code, "not reloaded yet")
	require.NoError(t, h.ovr.Load())
	h.now.Add(int64(time.Second))
	code, body = h.pushAs(t, "a", "up", 500)
	require.Equal(t, http.StatusNoContent, code, body)
	require.Equal(t, 610, h.stored(t, "a"))
}

func TestPushRateLimitGlobal(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 1000, 100, limits.StrategyGlobal
	var healthy atomic.Int64
	healthy.Store(4)
	h := newRateHarness(t, lim, "", func() int { return int(healthy.Load()) })

	code, _ := h.pushAs(t, "a", "up", 100)
	require.Equal(t, http.StatusNoContent, code)
	h.now.Add(int64(100 * time.Millisecond)) // 250/s here: 25 tokens
	code, body := h.pushAs(t, "a", "up", 26)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, body, "(1000 samples/s, burst 100, shared by 4 healthy distributors: 250 samples/s each)")
	healthy.Store(1) // three distributors left the ring: this one takes it all
	h.now.Add(int64(100 * time.Millisecond))
	code, body = h.pushAs(t, "a", "up", 100)
	require.Equal(t, http.StatusNoContent, code, body)
}

// BenchmarkRateLimiter is the limiter's cost per push (one tenant, every
// push allowed).
func BenchmarkRateLimiter(b *testing.B) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize = 1e12, 1<<40
	r := newRateLimiter(nil)
	now := testNow
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if err := r.allow("tenant-a", &lim, now, 2000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNoisyNeighbour is tenant b's push (the standard 2,000-series
// body) alone and while tenant a pushes far over its rate limit between
// b's pushes: b's ns/op must stay close to its solo run (compare the two
// with benchstat; not asserted, as timing is not tested). a's refused
// pushes run with the timer stopped.
//
//	go test ./distributor -run '^$' -bench NoisyNeighbour -count 8
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, noisy := range []bool{false, true} {
		b.Run(fmt.Sprintf("noisy=%v", noisy), func(b *testing.B) {
			lim := defaultLimits()
			lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 1, 2000, limits.StrategyLocal
			file := filepath.Join(b.TempDir(), "runtime.yaml")
			require.NoError(b, os.WriteFile(file, []byte("overrides:\n  b:\n    ingestion_rate: 0\n"), 0o644)) // b: no limit
			ovr, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: file, ReloadPeriod: time.Hour}, lim, nil, prometheus.NewRegistry())
			require.NoError(b, err)
			require.NoError(b, ovr.Load())
			r, _ := newTestRing(b, 1, 128, 1)
			d, err := New(defaultConfig(), Deps{
				Ring: r, Clients: noopClients{}, Limits: ovr,
				Tenants: tenant.Resolver{MultitenancyEnabled: true},
				Log:     slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(),
				Now: func() time.Time { return testNow },
			})
			require.NoError(b, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			b.Cleanup(func() { cancel(); <-done })

			body := standardBody(b)
			handler := d.PushHandler()
			w := &discardWriter{h: http.Header{}}
			push := func(tenantID string) int {
				req := newPushRequest(body)
				req.Header.Set("X-Scope-OrgID", tenantID)
				clear(w.h)
				handler.ServeHTTP(w, req)
				return w.code
			}
			require.Equal(b, http.StatusNoContent, push("a")) // a's burst is spent
			b.ReportAllocs()
			for b.Loop() {
				if noisy {
					b.StopTimer()
					for range 4 {
						if code := push("a"); code != http.StatusTooManyRequests {
							b.Fatalf("noisy tenant: status %d", code)
						}
					}
					b.StartTimer()
				}
				if code := push("b"); code != http.StatusNoContent {
					b.Fatalf("tenant b: status %d", code)
				}
			}
		})
	}
}

func TestRateLimiterRefuseEarly(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 100, 200, limits.StrategyLocal
	bigger := lim
	bigger.IngestionBurstSize = 400

	type step struct {
		lim   *limits.Limits
		at    time.Duration // since the start
		early bool          // refuseEarly, else allow
		n     int           // allow: the push; refuseEarly: the refused size reported
		want  string        // "" | "429" | "400"
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a new tenant is read", []step{{&lim, 0, true, 0, ""}}},
		{"nothing refused yet", []step{{&lim, 0, false, 200, ""}, {&lim, 0, true, 0, ""}, {&lim, 0, false, 1, "429"}}},
		{"refused until the last refused push fits", []step{
			{&lim, 0, false, 150, ""}, {&lim, 0, false, 100, "429"},
			{&lim, 0, true, 100, "429"}, {&lim, 400 * time.Millisecond, true, 100, "429"},
			{&lim, 500 * time.Millisecond, true, 0, ""}, {&lim, 500 * time.Millisecond, false, 100, ""},
		}},
		{"an accepted push clears it", []step{
			{&lim, 0, false, 150, ""}, {&lim, 0, false, 100, "429"}, {&lim, 0, false, 50, ""},
			{&lim, 0, true, 0, ""}, {&lim, 0, false, 1, "429"}, {&lim, 0, true, 1, "429"},
		}},
		{"over the burst is not recorded: it gets its 400", []step{
			{&lim, 0, false, 200, ""}, {&lim, 0, false, 201, "400"}, {&lim, 0, true, 0, ""},
			{&lim, 0, false, 150, "429"}, {&lim, 0, true, 150, "429"},
			{&lim, 2 * time.Second, true, 0, ""}, {&lim, 2 * time.Second, false, 201, "400"},
		}},
		{"an idle tenant is read", []step{
			{&lim, 0, false, 200, ""}, {&lim, 0, false, 200, "429"}, {&lim, 0, true, 200, "429"},
			{&lim, time.Hour, true, 0, ""}, {&lim, time.Hour, false, 200, ""},
		}},
		{"a changed limit clears it", []step{
			{&lim, 0, false, 200, ""}, {&lim, 0, false, 200, "429"}, {&lim, 0, true, 200, "429"},
			{&bigger, 0, true, 0, ""}, {&bigger, 0, false, 200, "429"}, {&bigger, 0, true, 200, "429"},
		}},
		{"rate 0 is no limit", []step{
			{&lim, 0, false, 200, ""}, {&lim, 0, false, 200, "429"}, {&limits.Limits{}, 0, true, 0, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRateLimiter(nil)
			for i, s := range tc.steps {
				var err error
				if s.early {
					var n int
					n, err = r.refuseEarly("a", s.lim, testNow.Add(s.at))
					require.Equal(t, s.n, n, "step %d: refused size", i)
				} else {
					err = r.allow("a", s.lim, testNow.Add(s.at), s.n)
				}
				switch s.want {
				case "":
					require.NoError(t, err, "step %d", i)
				case "429":
					require.Equal(t, http.StatusTooManyRequests, httpStatus(err), "step %d: %v", i, err)
				case "400":
					require.Equal(t, http.StatusBadRequest, httpStatus(err), "step %d: %v", i, err)
				}
			}
		})
	}
}

// countingBody is a request body that counts what is read of it.
type countingBody struct {
	r      *bytes.Reader
	read   int
	closed bool
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	return n, err
}

func (c *countingBody) Close() error { c.closed = true; return nil }

func (h *rateHarness) unread(tenantID string) float64 {
	return testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues(tenantID, limitedIngestionRateUnread))
}

func TestPushRefusedEarly(t *testing.T) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 10, 100, limits.StrategyLocal
	h := newRateHarness(t, lim, "", nil)

	code, body := h.pushAs(t, "a", "up", 80)
	require.Equal(t, http.StatusNoContent, code, body)
	code, _ = h.pushAs(t, "a", "up", 30) // decoded, refused: 30 recorded
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, 0.0, h.unread("a"))
	require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues("a", limitedIngestionRate)))

	// Not snappy at all: decoded, it would get 400. Refused early, it is
	// drained (so the connection can serve the next push) but not decoded.
	garbage := &countingBody{r: bytes.NewReader(bytes.Repeat([]byte("not snappy "), 1000))}
	req := newPushRequest(nil)
	req.Body, req.ContentLength = garbage, int64(garbage.r.Len())
	req.Header.Set("X-Scope-OrgID", "a")
	code, body = h.do(t, req)
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Equal(t, `ingestion rate limit (10 samples/s, burst 100) exceeded for tenant "a": its last refused request had 30 samples and still does not fit, so this one was refused unread (-distributor.ingestion-rate-limit, override "ingestion_rate") [strata-tenant-rate-limit]`, body)
	require.Equal(t, 11000, garbage.read, "the body is drained to its end")
	require.Equal(t, 1.0, h.unread("a"))
	require.Equal(t, 60.0, h.discarded("a"), "30 decoded + 30 estimated")
	require.Equal(t, 80, h.stored(t, "a"))

	// Declared over the compressed limit: 413, even while refused early.
	req = newPushRequest(nil)
	req.ContentLength = int64(h.d.maxCompressed) + 1
	req.Header.Set("X-Scope-OrgID", "a")
	code, _ = h.do(t, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	// Other tenants are read as usual, a new one's first push included.
	code, body = h.pushAs(t, "b", "up", 100)
	require.Equal(t, http.StatusNoContent, code, body)

	// Once the bucket holds the refused push again, pushes are read: one
	// over the burst gets its 400, and is not recorded as refused.
	h.now.Add(int64(time.Second)) // 20 + 10 tokens
	code, body = h.pushAs(t, "a", "up", 101)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "[strata-tenant-burst-too-small]")
	code, body = h.pushAs(t, "a", "up", 30)
	require.Equal(t, http.StatusNoContent, code, body)
	require.Equal(t, 110, h.stored(t, "a"))
	require.Equal(t, 1.0, h.unread("a"))
}
