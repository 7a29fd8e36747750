package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// stack is one in-process Strata (run() with loopback listeners).
type stack struct {
	base   string // http://127.0.0.1:port
	gossip string // memberlist host:port, for -memberlist.join
	cancel context.CancelFunc
	done   chan error
}

// startStack runs the binary's own wiring in-process and waits until it
// prints that it is ready. extra flags win over the defaults here.
func startStack(t *testing.T, dataDir string, extra ...string) *stack {
	t.Helper()
	args := append([]string{
		"-server.http-listen-address=127.0.0.1:0",
		"-server.grpc-listen-address=127.0.0.1:0",
		"-data.dir=" + dataDir,
		"-instance.id=stack-test",
		"-log.level=warn",
		"-memberlist.bind-address=127.0.0.1:0",
	}, extra...)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, args, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("strata exited: %v", err))
		s.done <- err
	}()
	httpRE := regexp.MustCompile(`^  HTTP: +(http://\S+)`)
	gossipRE := regexp.MustCompile(`^  Gossip: +(\S+)`)
	found := make(chan [2]string, 1)
	go func() {
		var base string
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := httpRE.FindStringSubmatch(sc.Text()); m != nil {
				base = m[1]
			}
			if m := gossipRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- [2]string{base, m[1]}
			}
		}
		close(found)
	}()
	select {
	case addrs, ok := <-found:
		if !ok {
			t.Fatalf("strata exited before it was ready: %v", <-s.done)
		}
		s.base, s.gossip = addrs[0], addrs[1]
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("strata did not become ready within 60s")
	}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
}

// testData is what the stack test writes, both to Strata and to a local
// reference TSDB that Prometheus' own engine reads.
type testData struct {
	start, end time.Time
	step       time.Duration
	series     []prompb.TimeSeries
	metadata   []prompb.MetricMetadata
}

func lbls(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func makeTestData(now time.Time) testData {
	d := testData{step: 15 * time.Second}
	d.end = now.Truncate(time.Minute)
	d.start = d.end.Add(-90 * time.Minute)
	n := int(d.end.Sub(d.start) / d.step)
	ts := func(i int) int64 { return d.start.Add(time.Duration(i) * d.step).UnixMilli() }
	for _, job := range []string{"api", "web"} {
		for inst := range 3 {
			instance := fmt.Sprintf("10.0.0.%d:9100", inst+1)
			for _, method := range []string{"GET", "POST"} {
				for _, code := range []string{"200", "500"} {
					s := prompb.TimeSeries{Labels: lbls("__name__", "http_requests_total", "job", job, "instance", instance, "method", method, "code", code)}
					v := 0.0
					for i := range n {
						v += float64((i*7+inst*3+len(method))%11) * 0.5
						if job == "web" && inst == 1 && i == n/2 {
							v = 0 // a counter reset
						}
						s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts(i), Value: v})
					}
					if job == "api" && inst == 0 && method == "GET" && code == "200" {
						s.Exemplars = []prompb.Exemplar{{Labels: lbls("trace_id", "abc123"), Value: 1, Timestamp: ts(n - 10)}}
					}
					d.series = append(d.series, s)
				}
			}
			g := prompb.TimeSeries{Labels: lbls("__name__", "temperature_celsius", "job", job, "instance", instance)}
			for i := range n {
				v := 20 + 5*math.Sin(float64(i+inst*10)/20)
				if i == n/3 && inst == 2 {
					v = math.NaN()
				}
				g.Samples = append(g.Samples, prompb.Sample{Timestamp: ts(i), Value: v})
			}
			d.series = append(d.series, g)
			// A classic histogram.
			bounds := []string{"0.1", "0.5", "1", "+Inf"}
			for bi, le := range bounds {
				b := prompb.TimeSeries{Labels: lbls("__name__", "request_duration_seconds_bucket", "job", job, "instance", instance, "le", le)}
				c := 0.0
				for i := range n {
					c += float64((i%5)+bi+inst) + 1
					b.Samples = append(b.Samples, prompb.Sample{Timestamp: ts(i), Value: c * float64(bi+1)})
				}
				d.series = append(d.series, b)
			}
			// Native histograms, integer and float.
			nh := prompb.TimeSeries{Labels: lbls("__name__", "rpc_duration_seconds", "job", job, "instance", instance)}
			fh := prompb.TimeSeries{Labels: lbls("__name__", "rpc_size_bytes", "job", job, "instance", instance)}
			for i := range n {
				nh.Histograms = append(nh.Histograms, prompb.FromIntHistogram(ts(i), tsdbutil.GenerateTestHistogram(int64(i+inst))))
				fh.Histograms = append(fh.Histograms, prompb.FromFloatHistogram(ts(i), tsdbutil.GenerateTestFloatHistogram(int64(i*2+inst))))
			}
			d.series = append(d.series, nh, fh)
		}
	}
	d.metadata = []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served."},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temperature_celsius", Help: "Temperature.", Unit: "celsius"},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "request_duration_seconds", Help: "Latency."},
	}
	return d
}

// push sends d with Prometheus' own remote-write client, a few timestamps
// per request as a Prometheus queue would.
func push(t *testing.T, base string, d testData) {
	t.Helper()
	u, err := url.Parse(base + "/api/v1/push")
	require.NoError(t, err)
	c, err := remote.NewWriteClient("stack-test", &remote.ClientConfig{
		URL: &config_util.URL{URL: u}, Timeout: model.Duration(10 * time.Second),
	})
	require.NoError(t, err)
	const perReq = 40
	n := len(d.series[0].Samples) + len(d.series[0].Histograms)
	for from := 0; from < n; from += perReq {
		to := min(from+perReq, n)
		req := prompb.WriteRequest{}
		if from == 0 {
			req.Metadata = d.metadata
		}
		for _, s := range d.series {
			part := prompb.TimeSeries{Labels: s.Labels}
			if len(s.Samples) > 0 {
				part.Samples = s.Samples[from:to]
			}
			if len(s.Histograms) > 0 {
				part.Histograms = s.Histograms[from:to]
			}
			for _, e := range s.Exemplars {
				if e.Timestamp >= tsOf(part, 0) && e.Timestamp <= tsOf(part, -1) {
					part.Exemplars = append(part.Exemplars, e)
				}
			}
			req.Timeseries = append(req.Timeseries, part)
		}
		b, err := req.Marshal()
		require.NoError(t, err)
		_, err = c.Store(context.Background(), snappy.Encode(nil, b), 0)
		require.NoError(t, err, "push of timestamps %d..%d", from, to)
	}
}

func tsOf(s prompb.TimeSeries, i int) int64 {
	if len(s.Samples) > 0 {
		if i < 0 {
			i = len(s.Samples) + i
		}
		return s.Samples[i].Timestamp
	}
	if i < 0 {
		i = len(s.Histograms) + i
	}
	return s.Histograms[i].Timestamp
}

// sortedQueryable makes the reference return series sorted by labels, as
// Strata's merged read path does. The engine asks for unsorted series, and
// a TSDB head then answers in creation order; operators that break ties by
// input order (topk, bottomk) would differ for no reason but that. A
// Prometheus block answers sorted too.
type sortedQueryable struct{ storage.Queryable }

func (q sortedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	return sortedQuerier{inner}, err
}

type sortedQuerier struct{ storage.Querier }

func (q sortedQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, true, hints, ms...)
}

// referenceStorage loads d into a local TSDB for Prometheus' own engine.
func referenceStorage(t *testing.T, d testData) storage.Storage {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	for _, s := range d.series {
		var b labels.ScratchBuilder
		for _, l := range s.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		ls := b.Labels()
		for _, smp := range s.Samples {
			_, err := app.Append(0, ls, smp.Timestamp, smp.Value)
			require.NoError(t, err)
		}
		for _, h := range s.Histograms {
			var err error
			if h.IsFloatHistogram() {
				_, err = app.AppendHistogram(0, ls, h.Timestamp, nil, h.ToFloatHistogram())
			} else {
				_, err = app.AppendHistogram(0, ls, h.Timestamp, h.ToIntHistogram(), nil)
			}
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	return st
}

// apiResult is the data part of a Prometheus API answer, decoded loosely so
// that Strata's JSON and the engine's own values compare field by field.
type apiResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type seriesJSON struct {
	Metric     map[string]string `json:"metric"`
	Values     [][2]any          `json:"values"`
	Value      [2]any            `json:"value"`
	Histograms [][2]any          `json:"histograms"`
	Histogram  [2]any            `json:"histogram"`
}

// getJSON calls the API with a form POST as Grafana does, except where
// Prometheus serves GET only (label values, metadata, status).
func getJSON(t *testing.T, base, path string, params url.Values) (int, []byte) {
	t.Helper()
	var resp *http.Response
	var err error
	if strings.Contains(path, "/label/") || strings.HasSuffix(path, "/metadata") || strings.Contains(path, "/status/") {
		resp, err = http.Get(base + path + "?" + params.Encode())
	} else {
		resp, err = http.PostForm(base+path, params)
	}
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func queryStrata(t *testing.T, base, path string, params url.Values) apiResult {
	t.Helper()
	code, b := getJSON(t, base, path, params)
	require.Equal(t, http.StatusOK, code, "%s %v: %s", path, params, b)
	var env struct {
		Status string    `json:"status"`
		Data   apiResult `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &env), string(b))
	require.Equal(t, "success", env.Status, string(b))
	return env.Data
}

// normalise turns a matrix or vector into sorted, comparable series.
func normalise(t *testing.T, raw json.RawMessage) []seriesJSON {
	var out []seriesJSON
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	for i := range out {
		if out[i].Value[0] != nil {
			out[i].Values = [][2]any{out[i].Value}
			out[i].Value = [2]any{}
		}
		if out[i].Histogram[0] != nil {
			out[i].Histograms = [][2]any{out[i].Histogram}
			out[i].Histogram = [2]any{}
		}
	}
	sort.Slice(out, func(a, b int) bool { return fmt.Sprint(out[a].Metric) < fmt.Sprint(out[b].Metric) })
	return out
}

// closeEnough compares two decoded JSON values; numbers in strings within
// 1e-9 relative, NaN equal to NaN.
func closeEnough(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, e1 := strconv.ParseFloat(x, 64)
		fy, e2 := strconv.ParseFloat(y, 64)
		if e1 != nil || e2 != nil {
			return false
		}
		if math.IsNaN(fx) || math.IsNaN(fy) {
			return math.IsNaN(fx) && math.IsNaN(fy)
		}
		return math.Abs(fx-fy) <= 1e-9*math.Max(math.Abs(fx), math.Abs(fy))
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y)))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !closeEnough(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k := range x {
			if !closeEnough(x[k], y[k]) {
				return false
			}
		}
		return true
	case [2]any:
		y, ok := b.([2]any)
		return ok && closeEnough(x[0], y[0]) && closeEnough(x[1], y[1])
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func requireSameSeries(t *testing.T, query string, want, got []seriesJSON) {
	t.Helper()
	require.Equal(t, len(want), len(got), "%s: series count", query)
	for i := range want {
		require.Equal(t, want[i].Metric, got[i].Metric, "%s: series %d", query, i)
		wv, _ := json.Marshal(want[i].Values)
		gv, _ := json.Marshal(got[i].Values)
		var wa, ga any
		_ = json.Unmarshal(wv, &wa)
		_ = json.Unmarshal(gv, &ga)
		require.True(t, closeEnough(wa, ga), "%s %v: values differ\nwant %s\n got %s", query, want[i].Metric, wv, gv)
		wh, _ := json.Marshal(want[i].Histograms)
		gh, _ := json.Marshal(got[i].Histograms)
		_ = json.Unmarshal(wh, &wa)
		_ = json.Unmarshal(gh, &ga)
		require.True(t, closeEnough(wa, ga), "%s %v: histograms differ\nwant %s\n got %s", query, want[i].Metric, wh, gh)
	}
}

// stackQueries cover the standard query mix: instant and range queries, rate,
// sum by, topk, histogram_quantile over classic and native histograms,
// every matcher type, offset and subqueries.
var stackQueries = []string{
	`http_requests_total`,
	`http_requests_total{job="api"}`,
	`http_requests_total{job!="api"}`,
	`http_requests_total{code=~"5.."}`,
	`http_requests_total{code!~"2..", method="POST"}`,
	`{__name__=~"temperature_.*", instance!="10.0.0.1:9100"}`,
	`rate(http_requests_total[5m])`,
	`irate(http_requests_total[5m])`,
	`increase(http_requests_total{job="web"}[10m])`,
	`sum by (job) (rate(http_requests_total[5m]))`,
	`sum without (instance) (rate(http_requests_total[5m]))`,
	`topk(3, rate(http_requests_total[5m]))`,
	`bottomk(2, sum by (instance) (rate(http_requests_total[5m])))`,
	`count_values("v", floor(temperature_celsius))`,
	`histogram_quantile(0.9, sum by (le, job) (rate(request_duration_seconds_bucket[5m])))`,
	`histogram_quantile(0.5, sum by (job) (rate(rpc_duration_seconds[5m])))`,
	`histogram_quantile(0.99, rate(rpc_size_bytes[5m]))`,
	`histogram_count(rate(rpc_duration_seconds[5m]))`,
	`histogram_sum(rpc_size_bytes)`,
	`rpc_duration_seconds{job="api"}`,
	`sum(rpc_size_bytes)`,
	`http_requests_total offset 10m`,
	`rate(http_requests_total[5m] offset 30m)`,
	`max_over_time(rate(http_requests_total[1m])[10m:30s])`,
	`avg_over_time(temperature_celsius[10m])`,
	`temperature_celsius > 22`,
	`temperature_celsius * on (job, instance) group_left sum by (job, instance) (rate(http_requests_total[5m]))`,
	`quantile_over_time(0.9, temperature_celsius[15m])`,
	`deriv(temperature_celsius[10m])`,
	`absent(nonexistent_metric)`,
	`label_replace(temperature_celsius, "host", "$1", "instance", "(.*):.*")`,
	`resets(http_requests_total[30m])`,
	`time() - timestamp(temperature_celsius)`,
	`vector(1) + on() group_left count(http_requests_total)`,
}

func TestStackPromQL(t *testing.T) {
	s := startStack(t, t.TempDir())
	d := makeTestData(time.Now())
	push(t, s.base, d)
	ref := sortedQueryable{referenceStorage(t, d)}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true})

	from, to, step := d.start.Add(20*time.Minute), d.end, 30*time.Second
	for _, q := range stackQueries {
		t.Run(q, func(t *testing.T) {
			// Range query.
			rq, err := engine.NewRangeQuery(context.Background(), ref, nil, q, from, to, step)
			require.NoError(t, err)
			res := rq.Exec(context.Background())
			require.NoError(t, res.Err)
			wantJSON, err := json.Marshal(res.Value)
			require.NoError(t, err)
			got := queryStrata(t, s.base, "/api/v1/query_range", url.Values{
				"query": {q}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}, "step": {"30"},
			})
			require.Equal(t, "matrix", got.ResultType)
			requireSameSeries(t, q, normalise(t, wantJSON), normalise(t, got.Result))

			// Instant query at an odd time between samples.
			at := d.end.Add(-17*time.Minute - 3*time.Second)
			iq, err := engine.NewInstantQuery(context.Background(), ref, nil, q, at)
			require.NoError(t, err)
			ires := iq.Exec(context.Background())
			require.NoError(t, ires.Err)
			wantJSON, err = json.Marshal(ires.Value)
			require.NoError(t, err)
			got = queryStrata(t, s.base, "/api/v1/query", url.Values{"query": {q}, "time": {at.Format(time.RFC3339Nano)}})
			require.Equal(t, string(ires.Value.Type()), got.ResultType)
			if got.ResultType == "scalar" {
				require.True(t, closeEnough(mustAny(t, wantJSON), mustAny(t, got.Result)), "%s: %s vs %s", q, wantJSON, got.Result)
				return
			}
			requireSameSeries(t, q, normalise(t, wantJSON), normalise(t, got.Result))
		})
	}

	t.Run("metadata API", func(t *testing.T) { checkMetadataAPIs(t, s.base, d) })
}

func mustAny(t *testing.T, b []byte) any {
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	return v
}

func checkMetadataAPIs(t *testing.T, base string, d testData) {
	startS, endS := fmt.Sprint(d.start.Unix()), fmt.Sprint(d.end.Unix())
	strings1 := func(path string, params url.Values) []string {
		code, b := getJSON(t, base, path, params)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, b)
		var env struct{ Data []string }
		require.NoError(t, json.Unmarshal(b, &env), string(b))
		return env.Data
	}
	require.Equal(t, []string{"__name__", "code", "instance", "job", "le", "method"}, strings1("/api/v1/labels", nil))
	require.Equal(t, []string{"__name__", "instance", "job"}, strings1("/api/v1/labels", url.Values{"match[]": {"temperature_celsius"}, "start": {startS}, "end": {endS}}))
	require.Equal(t, []string{"http_requests_total", "request_duration_seconds_bucket", "rpc_duration_seconds", "rpc_size_bytes", "temperature_celsius"}, strings1("/api/v1/label/__name__/values", nil))
	require.Equal(t, []string{"api", "web"}, strings1("/api/v1/label/job/values", url.Values{"start": {startS}, "end": {endS}}))
	require.Equal(t, []string{"500"}, strings1("/api/v1/label/code/values", url.Values{"match[]": {`http_requests_total{code=~"5.."}`}}))
	// A window before any data has no values.
	require.Empty(t, strings1("/api/v1/label/job/values", url.Values{"start": {"1000"}, "end": {"2000"}}))

	code, b := getJSON(t, base, "/api/v1/series", url.Values{"match[]": {`temperature_celsius{job="api"}`, `rpc_size_bytes{instance="10.0.0.1:9100"}`}, "start": {startS}, "end": {endS}})
	require.Equal(t, http.StatusOK, code, string(b))
	var series struct{ Data []map[string]string }
	require.NoError(t, json.Unmarshal(b, &series))
	require.Len(t, series.Data, 3+2, string(b)) // 3 api temperatures, 2 jobs' rpc_size_bytes on 10.0.0.1

	code, b = getJSON(t, base, "/api/v1/metadata", nil)
	require.Equal(t, http.StatusOK, code, string(b))
	var md struct {
		Data map[string][]struct{ Type, Help, Unit string }
	}
	require.NoError(t, json.Unmarshal(b, &md), string(b))
	require.Equal(t, "counter", md.Data["http_requests_total"][0].Type, string(b))
	require.Equal(t, "celsius", md.Data["temperature_celsius"][0].Unit, string(b))

	code, b = getJSON(t, base, "/api/v1/query_exemplars", url.Values{"query": {`http_requests_total{job="api"}`}, "start": {startS}, "end": {endS}})
	require.Equal(t, http.StatusOK, code, string(b))
	require.Contains(t, string(b), `"trace_id":"abc123"`)

	code, b = getJSON(t, base, "/api/v1/status/buildinfo", nil)
	require.Equal(t, http.StatusOK, code, string(b))
	var bi struct {
		Data struct {
			Version  string
			Features map[string]string
		}
	}
	require.NoError(t, json.Unmarshal(b, &bi), string(b))
	// Grafana's data source parses it as semver to pick its features.
	require.Regexp(t, semverRE, bi.Data.Version, string(b))
	// -target=all runs the alertmanager: its configuration API is here.
	require.Equal(t, "true", bi.Data.Features["alertmanager_config_api"], string(b))
}

// TestStackRestart checks that acknowledged samples survive a clean
// restart (the WAL is replayed before /ready) and appear once.
func TestStackRestart(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	d := makeTestData(time.Now())
	d.series = d.series[:4]
	push(t, s.base, d)
	s.stop()

	s = startStack(t, dir)
	got := queryStrata(t, s.base, "/api/v1/query", url.Values{"query": {"count_over_time(http_requests_total[2h])"}, "time": {fmt.Sprint(d.end.Unix())}})
	for _, sr := range normalise(t, got.Result) {
		require.Equal(t, fmt.Sprint(len(d.series[0].Samples)), sr.Values[0][1], "series %v", sr.Metric)
	}
	require.Len(t, normalise(t, got.Result), 4)
}
