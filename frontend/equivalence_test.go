package frontend

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/clustertest"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

const testTenant = "tenant-a"

// testData is six hours of counters and gauges at a 15 s interval ending
// an hour ago, with a gap, a staleness marker and counter resets.
func testData(end time.Time) []prompb.TimeSeries {
	rnd := rand.New(rand.NewPCG(1, 2))
	start := end.Add(-6 * time.Hour)
	var out []prompb.TimeSeries
	for i := range 3 {
		inst := fmt.Sprintf("i%d", i)
		counter := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "req_total"}, {Name: "instance", Value: inst}, {Name: "job", Value: []string{"a", "a", "b"}[i]}}}
		gauge := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "temp"}, {Name: "instance", Value: inst}, {Name: "job", Value: "b"}}}
		c := 0.0
		for ts := start; ts.Before(end); ts = ts.Add(15 * time.Second) {
			off := ts.Sub(start)
			ms := ts.UnixMilli()
			// A 20-minute gap in instance i1, two hours in.
			if i == 1 && off >= 2*time.Hour && off < 2*time.Hour+20*time.Minute {
				continue
			}
			c += float64(rnd.IntN(10))
			// A counter reset every 100 minutes, offset per instance.
			if (off+time.Duration(i)*17*time.Minute)%(100*time.Minute) == 0 {
				c = 0
			}
			counter.Samples = append(counter.Samples, prompb.Sample{Timestamp: ms, Value: c})
			g := 20 + 5*math.Sin(float64(ms)/3.6e6+float64(i)) + rnd.Float64()
			// Instance i2's gauge goes stale for half an hour at 3h.
			switch {
			case i == 2 && off == 3*time.Hour:
				gauge.Samples = append(gauge.Samples, prompb.Sample{Timestamp: ms, Value: math.Float64frombits(value.StaleNaN)})
				continue
			case i == 2 && off > 3*time.Hour && off < 3*time.Hour+30*time.Minute:
				continue
			}
			gauge.Samples = append(gauge.Samples, prompb.Sample{Timestamp: ms, Value: g})
		}
		out = append(out, counter, gauge)
	}
	return out
}

var equivalenceQueries = []string{
	`req_total`,
	`rate(req_total[5m])`,
	`increase(req_total[10m])`,
	`sum by (job) (rate(req_total[5m]))`,
	`topk(2, temp)`,
	`avg_over_time(temp[15m])`,
	`max_over_time(rate(req_total[5m])[30m:1m])`,
	`temp @ end()`,
	`rate(req_total[5m] @ start())`,
	`temp offset 10m`,
	`temp offset -10m`,
	`timestamp(temp)`,
	`resets(req_total[1h])`,
	`absent(nonexistent)`,
	`count(temp) by (job) > 1`,
}

func testLimits(t testing.TB, edit func(*limits.Limits)) *limits.Overrides {
	t.Helper()
	var l limits.Limits
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	l.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	if edit != nil {
		edit(&l)
	}
	return limits.NewOverrides(l)
}

func testConfig(t testing.TB, edit func(*Config)) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("frontend", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	if edit != nil {
		edit(&cfg)
	}
	return cfg
}

func newTestFrontend(t testing.TB, downstream http.Handler, edit func(*Config)) (*Frontend, http.Handler) {
	return newTestFrontendDeps(t, downstream, edit, nil)
}

func newTestFrontendDeps(t testing.TB, downstream http.Handler, edit func(*Config), editDeps func(*Deps)) (*Frontend, http.Handler) {
	t.Helper()
	deps := Deps{
		Downstream: downstream, Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Limits: testLimits(t, nil), Reg: prometheus.NewRegistry(),
	}
	if editDeps != nil {
		editDeps(&deps)
	}
	f, err := New(testConfig(t, edit), deps)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.closeCache() })
	mux := http.NewServeMux()
	f.RegisterRoutes(muxRouter{mux})
	return f, mux
}

type muxRouter struct{ mux *http.ServeMux }

func (m muxRouter) Handle(pattern, _ string, h http.Handler) { m.mux.Handle(pattern, h) }

// rangeQuery sends a Grafana-style form POST and returns status and body.
func rangeQuery(t testing.TB, h http.Handler, query string, start, end time.Time, step time.Duration, hdr map[string]string) (int, []byte) {
	t.Helper()
	form := url.Values{"query": {query}, "start": {formatTime(start.UnixMilli())}, "end": {formatTime(end.UnixMilli())}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if limit := hdr["X-Test-Limit"]; limit != "" {
		form.Set("limit", limit) // a parameter, not a header
	}
	req := httptest.NewRequest(http.MethodPost, "/api/v1/query_range", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Scope-OrgID", testTenant)
	for k, v := range hdr {
		if k != "X-Test-Limit" {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

type apiAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string       `json:"resultType"`
		Result     model.Matrix `json:"result"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
}

// requireSameAnswer compares two answers as promqltest does: same series
// and timestamps, floats within its relative tolerance (NaNs equal).
func requireSameAnswer(t testing.TB, want, got []byte, what string) {
	t.Helper()
	var w, g apiAnswer
	require.NoError(t, json.Unmarshal(want, &w), what)
	require.NoError(t, json.Unmarshal(got, &g), what)
	require.Equal(t, w.Status, g.Status, what)
	require.Equal(t, w.ErrorType, g.ErrorType, what)
	require.Equal(t, w.Error, g.Error, what)
	require.Equal(t, w.Data.ResultType, g.Data.ResultType, what)
	require.Equal(t, len(w.Data.Result), len(g.Data.Result), "%s: series", what)
	for i, ws := range w.Data.Result {
		gs := g.Data.Result[i]
		require.Equal(t, ws.Metric, gs.Metric, "%s: series %d", what, i)
		require.Equal(t, len(ws.Values), len(gs.Values), "%s: points of %s", what, ws.Metric)
		for j, wp := range ws.Values {
			gp := gs.Values[j]
			require.Equal(t, wp.Timestamp, gp.Timestamp, "%s: %s point %d", what, ws.Metric, j)
			require.True(t, almostEqual(float64(wp.Value), float64(gp.Value)), "%s: %s at %s: want %v, got %v", what, ws.Metric, wp.Timestamp, wp.Value, gp.Value)
		}
	}
}

// almostEqual is promqltest's float comparison (relative epsilon 1e-6).
func almostEqual(a, b float64) bool {
	const epsilon = 0.000001
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	diff := math.Abs(a - b)
	if a == 0 || b == 0 || diff < math.SmallestNonzeroFloat64 {
		return diff < epsilon*math.SmallestNonzeroFloat64
	}
	return diff/(math.Abs(a)+math.Abs(b)) < epsilon
}

func lookups(f *Frontend, result string) float64 {
	return testutil.ToFloat64(f.m.cacheLookups.WithLabelValues(f.cacheBackend, result))
}

func downstreamCalls(f *Frontend) float64 {
	return testutil.ToFloat64(f.m.downstream.WithLabelValues("200"))
}

// TestSplitAndCachedEqualWhole runs every query of the table whole on a
// real querier over real ingesters, and through the frontend split by the
// hour: first cold, then again (from the cache), then with the range
// moved forward (partly from the cache), with the embedded and the
// memcached backend. Steps that divide the hour and one that does not,
// and a start off the step's grid.
func TestSplitAndCachedEqualWhole(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	end := time.Now().Add(-time.Hour).Truncate(time.Minute)
	c.Push(t, testTenant, testData(end))
	whole := c.Querier(t).Handler()

	for _, backend := range []string{BackendEmbedded, BackendMemcached} {
		t.Run(backend, func(t *testing.T) {
			f, h := newTestFrontend(t, whole, func(cfg *Config) {
				cfg.SplitInterval = time.Hour
				if backend == BackendMemcached {
					cfg.ResultsCache.Backend = BackendMemcached
					cfg.ResultsCache.Memcache.Addresses = startMemcached(t)
				}
			})
			for _, step := range []time.Duration{time.Minute, 7 * time.Minute} {
				for _, q := range equivalenceQueries {
					for _, phase := range []time.Duration{0, 13 * time.Second} {
						start := end.Add(-7 * time.Hour).Truncate(step).Add(phase)
						stop := end.Add(-10 * time.Minute).Truncate(step).Add(phase)
						what := fmt.Sprintf("%s step %s phase %s", q, step, phase)
						wantCode, want := rangeQuery(t, whole, q, start, stop, step, nil)
						require.Equal(t, http.StatusOK, wantCode, "%s: %s", what, want)

						code, got := rangeQuery(t, h, q, start, stop, step, nil)
						require.Equal(t, http.StatusOK, code, "%s: %s", what, got)
						requireSameAnswer(t, want, got, what+" (cold)")

						// The identical refresh: every leg from the cache.
						hits, calls := lookups(f, "hit"), downstreamCalls(f)
						_, got = rangeQuery(t, h, q, start, stop, step, nil)
						requireSameAnswer(t, want, got, what+" (warm)")
						legs := len(splitLegs(start.UnixMilli(), stop.UnixMilli(), step.Milliseconds(), time.Hour.Milliseconds()))
						require.Equal(t, float64(legs), lookups(f, "hit")-hits, "%s: legs from the cache", what)
						require.Equal(t, calls, downstreamCalls(f), "%s: no querier call when warm", what)

						// Moved forward by five steps: cached extents reused,
						// except with @ start() or end(), which moved too.
						start2, stop2 := start.Add(5*step), stop.Add(5*step)
						_, want2 := rangeQuery(t, whole, q, start2, stop2, step, nil)
						partial := lookups(f, "partial")
						_, got2 := rangeQuery(t, h, q, start2, stop2, step, nil)
						requireSameAnswer(t, want2, got2, what+" (moved)")
						if !strings.Contains(q, "@") {
							require.Greater(t, lookups(f, "partial"), partial, "%s: the newest leg is partly cached", what)
						}
					}
				}
			}
		})
	}
}

// startMemcached runs Debian's memcached on a free loopback port until
// the test ends, and returns its address.
func startMemcached(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached is not installed (make test-deps installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	require.NoError(t, l.Close())
	args := []string{"-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // memcached refuses to run as root
	}
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // by its PID: the one started here
		_ = cmd.Wait()
		t.Logf("stopped memcached pid %d", pid)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return addr
		}
		require.True(t, time.Now().Before(deadline), "memcached did not listen on %s: %v", addr, err)
		time.Sleep(20 * time.Millisecond)
	}
}
