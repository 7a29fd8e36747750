package frontend

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/clustertest"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/querier"
)

func TestSplitLegs(t *testing.T) {
	const h = int64(time.Hour / time.Millisecond)
	const m = int64(time.Minute / time.Millisecond)
	for _, tc := range []struct {
		name                       string
		start, end, step, interval int64
		want                       [][2]int64
	}{
		{"no split", 0, 3 * h, m, 0, [][2]int64{{0, 3 * h}}},
		{"on boundaries", 0, 2 * h, m, h, [][2]int64{{0, h - m}, {h, 2*h - m}, {2 * h, 2 * h}}},
		{"within one interval", 10 * m, 50 * m, m, h, [][2]int64{{10 * m, 50 * m}}},
		// 7 m does not divide the hour: legs keep the request's grid.
		{"step off the interval", 0, 2 * h, 7 * m, h, [][2]int64{{0, 56 * m}, {63 * m, 119 * m}}},
		{"start off the grid", 13_000, h + 13_000, 30 * m, h, [][2]int64{{13_000, 30*m + 13_000}, {h + 13_000, h + 13_000}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, splitLegs(tc.start, tc.end, tc.step, tc.interval))
		})
	}
}

func TestGaps(t *testing.T) {
	ext := func(s, e int64) extent { return extent{start: s, end: e} }
	for _, tc := range []struct {
		name string
		es   []extent
		want [][2]int64
	}{
		{"nothing cached", nil, [][2]int64{{0, 100}}},
		{"all cached", []extent{ext(0, 100)}, nil},
		{"cached beyond", []extent{ext(-50, 150)}, nil},
		{"head missing", []extent{ext(30, 100)}, [][2]int64{{0, 20}}},
		{"tail missing", []extent{ext(0, 60)}, [][2]int64{{70, 100}}},
		{"hole", []extent{ext(0, 20), ext(60, 100)}, [][2]int64{{30, 50}}},
		{"outside", []extent{ext(200, 300)}, [][2]int64{{0, 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, gaps(tc.es, 0, 100, 10))
		})
	}
}

func TestExtentsRoundTrip(t *testing.T) {
	es := []extent{{start: -10, end: 5, body: []byte("a")}, {start: 20, end: 1 << 40, body: []byte(`{"x":1}`)}}
	v := encodeExtents("key", es)
	got, ok, err := decodeExtents("key", v)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, es, got)
	_, ok, err = decodeExtents("other key", v)
	require.NoError(t, err)
	require.False(t, ok, "another key's entry is a miss")
	for i := range len(v) - 1 {
		_, _, err := decodeExtents("key", v[:i])
		require.Error(t, err, "truncated at %d", i)
	}
}

// TestFrontendRequests covers what the frontend does with a request
// besides splitting it, against a real querier: no-store, a leg that
// fails, fresh points never cached, unsplittable requests.
func TestFrontendRequests(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Querier: func(cfg *querier.Config) { cfg.MaxQueryLength = 4 * time.Hour }})
	end := time.Now().Truncate(time.Minute)
	c.Push(t, testTenant, testData(end))
	whole := c.Querier(t).Handler()
	f, h := newTestFrontendDeps(t, whole, func(cfg *Config) { cfg.SplitInterval = time.Hour }, func(d *Deps) { d.MaxQueryLength = 4 * time.Hour })

	t.Run("no-store", func(t *testing.T) {
		start, stop := end.Add(-5*time.Hour), end.Add(-2*time.Hour)
		before := lookups(f, "miss") + lookups(f, "hit") + lookups(f, "partial")
		for range 2 {
			code, body := rangeQuery(t, h, `temp`, start, stop, time.Minute, map[string]string{"Cache-Control": "no-store"})
			require.Equal(t, http.StatusOK, code, string(body))
		}
		require.Equal(t, before, lookups(f, "miss")+lookups(f, "hit")+lookups(f, "partial"), "no-store neither reads nor writes the cache")
	})

	t.Run("an @ time within the freshness bound is not cached", func(t *testing.T) {
		start, stop := end.Add(-5*time.Hour), end.Add(-2*time.Hour)
		q := fmt.Sprintf("temp @ %d", end.Add(-time.Minute).Unix())
		wantCode, want := rangeQuery(t, whole, q, start, stop, time.Minute, nil)
		require.Equal(t, http.StatusOK, wantCode)
		before := lookups(f, "miss") + lookups(f, "hit") + lookups(f, "partial")
		_, got := rangeQuery(t, h, q, start, stop, time.Minute, nil)
		requireSameAnswer(t, want, got, q)
		require.Equal(t, before, lookups(f, "miss")+lookups(f, "hit")+lookups(f, "partial"))
	})

	t.Run("GET", func(t *testing.T) {
		start, stop := end.Add(-5*time.Hour), end.Add(-2*time.Hour)
		get := func(h http.Handler) (int, []byte) {
			form := url.Values{"query": {`rate(req_total[5m])`}, "start": {formatTime(start.UnixMilli())}, "end": {formatTime(stop.UnixMilli())}, "step": {"60"}}
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range?"+form.Encode(), nil)
			req.Header.Set("X-Scope-OrgID", testTenant)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code, rec.Body.Bytes()
		}
		wantCode, want := get(whole)
		require.Equal(t, http.StatusOK, wantCode)
		legs := testutil.ToFloat64(f.m.legs)
		code, got := get(h)
		require.Equal(t, http.StatusOK, code, "%.300s", got)
		requireSameAnswer(t, want, got, "GET")
		require.Equal(t, legs+4, testutil.ToFloat64(f.m.legs), "three hours off the hour: four legs")
	})

	t.Run("many legs stay within the querier's concurrent queries per tenant", func(t *testing.T) {
		// 36 legs of 5 minutes; the querier answers 429 to an eleventh
		// query of a tenant at once (half of -querier.max-concurrent).
		_, h := newTestFrontend(t, whole, func(cfg *Config) { cfg.SplitInterval = 5 * time.Minute })
		start, stop := end.Add(-5*time.Hour), end.Add(-2*time.Hour)
		wantCode, want := rangeQuery(t, whole, `rate(req_total[5m])`, start, stop, time.Minute, map[string]string{"Cache-Control": "no-store"})
		require.Equal(t, http.StatusOK, wantCode)
		for range 3 {
			code, got := rangeQuery(t, h, `rate(req_total[5m])`, start, stop, time.Minute, map[string]string{"Cache-Control": "no-store"})
			require.Equal(t, http.StatusOK, code, "%.300s", got)
			requireSameAnswer(t, want, got, "36 legs")
		}
	})

	t.Run("fresh points are not cached", func(t *testing.T) {
		start, stop := end.Add(-30*time.Minute), end
		rangeQuery(t, h, `temp`, start, stop, time.Minute, nil)
		partial := lookups(f, "partial")
		_, _ = rangeQuery(t, h, `temp`, start, stop, time.Minute, nil)
		require.Equal(t, partial+1, lookups(f, "partial"), "the last 10 minutes are queried again")
	})

	t.Run("a leg's error fails the query with its status", func(t *testing.T) {
		// The legs of the hours before the data pass; in the legs with
		// data the three gauges lose the label that told them apart.
		const q = `label_replace(temp, "instance", "", "", "")`
		start, stop := end.Add(-6*time.Hour-30*time.Minute), end.Add(-2*time.Hour-30*time.Minute)
		wantCode, want := rangeQuery(t, whole, q, start, stop, time.Minute, nil)
		require.Equal(t, http.StatusUnprocessableEntity, wantCode, "%.300s", want)
		code, got := rangeQuery(t, h, q, start, stop, time.Minute, nil)
		require.Equal(t, wantCode, code, "%.300s", got)
		requireSameAnswer(t, want, got, "leg error")
	})

	for _, tc := range []struct {
		name, query string
		hdr         map[string]string
		length      time.Duration
	}{
		{"limit is sent whole", `temp`, map[string]string{"X-Test-Limit": "1"}, 3 * time.Hour},
		{"a query that does not parse is sent whole", `temp{`, nil, 3 * time.Hour},
		// The querier's limit is 4h; each leg alone would pass it.
		{"longer than max_query_length is sent whole", `temp`, nil, 5 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, stop := end.Add(-6*time.Hour), end.Add(-6*time.Hour+tc.length)
			passed := testutil.ToFloat64(f.m.queries.WithLabelValues("passthrough"))
			hdr := tc.hdr
			wantCode, want := rangeQuery(t, whole, tc.query, start, stop, time.Minute, hdr)
			code, got := rangeQuery(t, h, tc.query, start, stop, time.Minute, hdr)
			require.Equal(t, wantCode, code, "%.300s", got)
			requireSameAnswer(t, want, got, tc.name)
			require.Equal(t, passed+1, testutil.ToFloat64(f.m.queries.WithLabelValues("passthrough")))
		})
	}
}

// countingCache records the most Gets it served at once.
type countingCache struct {
	inner          cacheBackend
	mu             sync.Mutex
	inFlight, most int
}

func (c *countingCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	c.inFlight++
	c.most = max(c.most, c.inFlight)
	c.mu.Unlock()
	time.Sleep(time.Millisecond) // long enough for the legs to pile up
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	return c.inner.Get(ctx, key)
}

func (c *countingCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.inner.Set(ctx, key, value, ttl)
}

// TestFrontendBoundsLegs: a query's legs, cache reads included, run at
// most max_query_parallelism at once, and a query that would make more
// than maxLegs legs goes whole.
func TestFrontendBoundsLegs(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	end := time.Now().Truncate(time.Minute)
	c.Push(t, testTenant, testData(end))
	whole := c.Querier(t).Handler()
	start, stop := end.Add(-5*time.Hour), end.Add(-2*time.Hour)

	f, h := newTestFrontendDeps(t, whole, func(cfg *Config) { cfg.SplitInterval = 5 * time.Minute }, func(d *Deps) {
		d.Limits = testLimits(t, func(l *limits.Limits) { l.MaxQueryParallelism = 3 })
	})
	cc := &countingCache{inner: f.cache}
	f.cache = cc
	wantCode, want := rangeQuery(t, whole, `rate(req_total[5m])`, start, stop, time.Minute, nil)
	require.Equal(t, http.StatusOK, wantCode)
	code, got := rangeQuery(t, h, `rate(req_total[5m])`, start, stop, time.Minute, nil)
	require.Equal(t, http.StatusOK, code, "%.300s", got)
	requireSameAnswer(t, want, got, "37 legs")
	require.Equal(t, 37.0, testutil.ToFloat64(f.m.legs))
	require.LessOrEqual(t, cc.most, 3, "cache reads at once")
	require.Positive(t, cc.most)

	// 10 s legs at a 10 s step over 3 h: 1081 legs, sent whole.
	f, h = newTestFrontend(t, whole, func(cfg *Config) { cfg.SplitInterval = 10 * time.Second })
	wantCode, want = rangeQuery(t, whole, `temp`, start, stop, 10*time.Second, nil)
	require.Equal(t, http.StatusOK, wantCode)
	code, got = rangeQuery(t, h, `temp`, start, stop, 10*time.Second, nil)
	require.Equal(t, http.StatusOK, code, "%.300s", got)
	requireSameAnswer(t, want, got, "over maxLegs")
	require.Equal(t, 1.0, testutil.ToFloat64(f.m.queries.WithLabelValues("passthrough")))
	require.Zero(t, testutil.ToFloat64(f.m.legs))
}

// TestFreshBound: nothing newer than the larger of max_cache_freshness
// and the tenant's out-of-order window is cached (late samples may still
// arrive there), nor newer than what nested negative offsets read ahead.
func TestFreshBound(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	mk := func(editLim func(*limits.Limits), ooo time.Duration) *Frontend {
		f, _ := newTestFrontendDeps(t, http.NotFoundHandler(), func(cfg *Config) { cfg.SplitInterval = time.Hour }, func(d *Deps) {
			d.Now = func() time.Time { return now }
			d.OutOfOrderTimeWindow = ooo
			d.Limits = testLimits(t, editLim)
		})
		return f
	}
	cacheEnd := func(f *Frontend, q string) time.Time {
		t.Helper()
		form := url.Values{"query": {q}, "start": {formatTime(now.Add(-6 * time.Hour).UnixMilli())}, "end": {formatTime(now.UnixMilli())}, "step": {"60"}}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/query_range", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		require.NoError(t, r.ParseForm())
		rr, ok := f.parseRange(r, testTenant)
		require.True(t, ok)
		require.True(t, rr.useCache)
		return time.UnixMilli(rr.cacheEnd).UTC()
	}
	require.Equal(t, now.Add(-10*time.Minute), cacheEnd(mk(nil, 0), `up`), "max_cache_freshness")
	require.Equal(t, now.Add(-time.Hour), cacheEnd(mk(nil, time.Hour), `up`), "-ingester.out-of-order-time-window")
	two := 2 * time.Hour
	require.Equal(t, now.Add(-2*time.Hour), cacheEnd(mk(func(l *limits.Limits) { l.OutOfOrderTimeWindow = &two }, time.Hour), `up`), "the tenant's out_of_order_time_window")
	require.Equal(t, now.Add(-10*time.Minute-time.Hour), cacheEnd(mk(nil, 0), `up offset -1h`), "a negative offset")
	require.Equal(t, now.Add(-10*time.Minute-2*time.Hour), cacheEnd(mk(nil, 0), `max_over_time((up offset -1h)[5m:1m] offset -1h)`),
		"negative offsets of a selector and the subquery around it add up")
}
