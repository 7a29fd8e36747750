package querier

import (
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/tenant"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// apiT0 is the start of the API tests' data, in Unix seconds; the data
// spans 10 minutes and "now" is its end.
const apiT0 = 1_700_000_000

var apiNow = time.Unix(apiT0+600, 0)

// loadAPIData appends, every 15s over 10 minutes: two up series, two
// request counters (one with an exemplar at +5m), a native histogram and a
// series whose label value needs HTML escaping.
func loadAPIData(t testing.TB, c *cluster) {
	t.Helper()
	app := c.appender(context.Background())
	add := func(ls labels.Labels, ts int64, v float64, fh *histogram.FloatHistogram, exs ...exemplar.Exemplar) {
		_, err := app.Append(0, ls, 0, ts, v, nil, fh, storage.AppendV2Options{Exemplars: exs})
		require.NoError(t, err)
	}
	for k := int64(0); k <= 40; k++ {
		ts := (apiT0 + k*15) * 1000
		add(labels.FromStrings("__name__", "up", "job", "prometheus", "instance", "localhost:9090"), ts, 1, nil)
		add(labels.FromStrings("__name__", "up", "job", "node", "instance", "localhost:9100"), ts, float64(min(k%5, 1)), nil)
		var exs []exemplar.Exemplar
		if k == 20 {
			exs = []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "abc123"), Value: 1, Ts: ts, HasTs: true}}
		}
		add(labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), ts, float64(10*k), nil, exs...)
		add(labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "500"), ts, float64(k/4), nil)
		add(labels.FromStrings("__name__", "request_duration_seconds", "job", "api"), ts, 0, &histogram.FloatHistogram{
			Schema: 0, Count: float64(3 * k), Sum: 0.25 * float64(k), ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: -2, Length: 3}}, PositiveBuckets: []float64{float64(k), float64(k), float64(k)},
			CounterResetHint: histogram.UnknownCounterReset,
		})
		add(labels.FromStrings("__name__", "weird", "v", "<a&b>"), ts, 1, nil)
	}
	require.NoError(t, app.Commit())
	for _, f := range c.ings {
		f.metadata = []*ingesterpb.MetricMetadata{
			{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests <served> & counted."},
			{Type: ingesterpb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "Whether the target answered."},
		}
	}
}

type apiCase struct {
	name   string
	method string
	path   string     // with the query string
	form   url.Values // POST body
}

func get(name, path string) apiCase { return apiCase{name: name, method: http.MethodGet, path: path} }

func post(name, path string, form url.Values) apiCase {
	return apiCase{name: name, method: http.MethodPost, path: path, form: form}
}

func ts(offset int) string { return fmt.Sprint(apiT0 + offset) }

func TestAPIGolden(t *testing.T) {
	c := startCluster(t, clusterOptions{deps: func(d *Deps) {
		d.Now = func() time.Time { return apiNow }
		d.Build = BuildInfo{Version: "0.1.0", Revision: "abc", Branch: "main", BuildUser: "ci", BuildDate: "20261125"}
	}})
	loadAPIData(t, c)
	h := c.q.Handler()
	start, end := ts(0), ts(600)
	rangeQ := func(q, step string) url.Values {
		return url.Values{"query": {q}, "start": {ts(300)}, "end": {end}, "step": {step}}
	}
	for _, tc := range []apiCase{
		// Grafana's requests.
		post("grafana_query_range", "/api/v1/query_range", rangeQ("sum by (job) (rate(http_requests_total[5m]))", "60")),
		post("grafana_query_range_float_step", "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"1700000280"}, "end": {"1700000400"}, "step": {"30.5"}, "timeout": {"30s"}}),
		post("grafana_query", "/api/v1/query", url.Values{"query": {"up"}, "time": {end}}),
		get("grafana_labels", "/api/v1/labels?start="+start+"&end="+end+"&limit=40000"),
		get("grafana_labels_match", "/api/v1/labels?start="+start+"&end="+end+"&match[]=up&limit=40000"),
		get("grafana_label_names", "/api/v1/label/__name__/values?start="+start+"&end="+end+"&limit=40000"),
		get("grafana_series", "/api/v1/series?match[]="+url.QueryEscape(`{__name__!=""}`)+"&start="+start+"&end="+end),
		get("grafana_metadata", "/api/v1/metadata"),
		get("grafana_buildinfo", "/api/v1/status/buildinfo"),
		get("grafana_exemplars", "/api/v1/query_exemplars?query="+url.QueryEscape(`sum(rate(http_requests_total[5m]))`)+"&start="+start+"&end="+end),

		// Queries.
		get("query_range_rfc3339_duration_step", "/api/v1/query_range?query=up&start=2023-11-14T22:18:20Z&end=2023-11-14T22:23:20.5Z&step=1m"),
		get("query_default_time", "/api/v1/query?query=up"),
		get("query_scalar", "/api/v1/query?query=1%2B1&time="+end),
		get("query_string", "/api/v1/query?query=%22%3Cb%3E%22&time="+end),
		get("query_native_histogram", "/api/v1/query?query=request_duration_seconds&time="+end),
		get("query_range_histogram_quantile", "/api/v1/query_range?query="+url.QueryEscape("histogram_quantile(0.9, rate(request_duration_seconds[5m]))")+"&start="+ts(300)+"&end="+end+"&step=150"),
		get("query_range_native_histogram", "/api/v1/query_range?query=request_duration_seconds&start="+ts(570)+"&end="+end+"&step=15"),
		get("query_limit", "/api/v1/query?query=up&limit=1&time="+end),
		get("query_lookback_delta", "/api/v1/query?query=up&time="+ts(700)+"&lookback_delta=1m"),
		get("query_html_label", "/api/v1/query?query=weird&time="+end),
		get("query_warning", "/api/v1/query?query="+url.QueryEscape(`rate(up[5m])`)+"&time="+end),
		get("query_exec_error", "/api/v1/query?query="+url.QueryEscape(`label_replace(label_replace(up, "job", "", "", ""), "instance", "", "", "")`)+"&time="+end),
		get("query_timeout", "/api/v1/query?query=up&time="+end+"&timeout=0.000000001"),

		post("format_query", "/api/v1/format_query", url.Values{"query": {`sum by(job)(rate(x{a="<b>"}[5m]))`}}),

		// Parameter errors, with Prometheus' messages.
		get("error_missing_start", "/api/v1/query_range?query=up&end="+end+"&step=15"),
		get("error_bad_time", "/api/v1/query?query=up&time=yesterday"),
		get("error_end_before_start", "/api/v1/query_range?query=up&start="+end+"&end="+start+"&step=15"),
		get("error_zero_step", "/api/v1/query_range?query=up&start="+start+"&end="+end+"&step=0"),
		get("error_bad_step", "/api/v1/query_range?query=up&start="+start+"&end="+end+"&step=abc"),
		get("error_too_many_points", "/api/v1/query_range?query=up&start=0&end="+end+"&step=1"),
		get("error_bad_query", "/api/v1/query?query=sum+by"),
		get("error_empty_query", "/api/v1/query?query="),
		get("error_bad_limit", "/api/v1/query?query=up&limit=x"),
		get("error_negative_limit", "/api/v1/labels?limit=-1"),
		get("error_bad_timeout", "/api/v1/query?query=up&timeout=soon"),
		get("error_bad_lookback_delta", "/api/v1/query?query=up&lookback_delta=x"),

		// Series.
		get("series_limit", "/api/v1/series?match[]=up&match[]=http_requests_total&limit=3"),
		post("series_post_two_matchers", "/api/v1/series", url.Values{"match[]": {"up", `http_requests_total{code="500"}`}, "start": {start}, "end": {end}}),
		get("series_out_of_range", "/api/v1/series?match[]=up&start=1000&end=2000"),
		get("error_series_no_match", "/api/v1/series"),
		get("error_series_empty_matcher", "/api/v1/series?match[]="+url.QueryEscape(`{foo=""}`)),
		get("error_series_bad_matcher", "/api/v1/series?match[]=up{"),

		// Labels.
		post("labels_post_two_matchers", "/api/v1/labels", url.Values{"match[]": {"up", "weird"}}),
		get("labels_limit", "/api/v1/labels?limit=2"),
		get("label_values_match", "/api/v1/label/job/values?match[]=up"),
		get("label_values_utf8_escaped_name", "/api/v1/label/U__j_6f_b/values"),
		get("label_values_html", "/api/v1/label/v/values"),
		get("label_values_unknown", "/api/v1/label/nope/values"),
		get("label_values_limit", "/api/v1/label/__name__/values?limit=1"),
		get("error_label_values_invalid_name", "/api/v1/label/%FF/values"),
		get("error_labels_bad_match", "/api/v1/labels?match[]=up{"),

		// Metadata.
		get("metadata_metric", "/api/v1/metadata?metric=up"),
		get("metadata_limit_zero", "/api/v1/metadata?limit=0"),
		get("error_metadata_bad_limit", "/api/v1/metadata?limit=x"),

		// Exemplars.
		get("exemplars_no_selector", "/api/v1/query_exemplars?query=1"),
		get("exemplars_out_of_range", "/api/v1/query_exemplars?query=http_requests_total&start=0&end=1"),
		get("error_exemplars_end_before_start", "/api/v1/query_exemplars?query=up&start=2&end=1"),
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.form != nil {
				body = strings.NewReader(tc.form.Encode())
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := fmt.Sprintf("%d %s\n%s\n", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			checkGolden(t, filepath.Join("testdata", "api", tc.name+".golden"), got)
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./querier -run TestAPIGolden -update to create it")
	require.Equal(t, string(want), got)
}

// TestAPIExactMessages pins the error texts clients see, beside the goldens.
func TestAPIExactMessages(t *testing.T) {
	c := startCluster(t, clusterOptions{deps: func(d *Deps) { d.Now = func() time.Time { return apiNow } }})
	h := c.q.Handler()
	for _, tc := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/api/v1/query_range?query=up&end=1&step=1", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}`},
		{"/api/v1/query?query=up&time=x", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"x\" to a valid timestamp"}`},
		{"/api/v1/query_range?query=up&start=0&end=11001&step=1", 400, `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}`},
		{"/api/v1/query_range?query=up&start=0&end=11000&step=1", 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`},
		{"/api/v1/query_range?query=up&start=2&end=1&step=1", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}`},
		{"/api/v1/query_range?query=up&start=1&end=2&step=-1", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}`},
		{"/api/v1/series", 400, `{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}`},
		{"/api/v1/labels?limit=-1", 400, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}`},
		{"/api/v1/metadata?limit_per_metric=x", 400, `{"status":"error","errorType":"bad_data","error":"limit_per_metric must be a number"}`},
		{"/api/v1/query_exemplars?query=up&start=2&end=1", 400, `{"status":"error","errorType":"bad_data","error":"end timestamp must not be before start timestamp"}`},
		{"/api/v1/query?query=count_over_time(vector(1)%5B30d:1ms%5D)", 400, `{"status":"error","errorType":"bad_data","error":"subquery vector(1)[30d:1ms] evaluates 2592000000 steps per point (range 720h0m0s / step 1ms), limit 11000 (-querier.max-subquery-steps): use a larger step [strata-subquery-too-many-steps]"}`},
		{"/api/v1/query_range?query=max_over_time(up%5B1d:%5D)&start=0&end=60&step=60", 200, ""},
		{"/api/v1/query_range?query=rate(up%5B1h:100ms%5D)&start=0&end=60&step=60", 400, `{"status":"error","errorType":"bad_data","error":"subquery up[1h:100ms] evaluates 36000 steps per point (range 1h0m0s / step 100ms), limit 11000 (-querier.max-subquery-steps): use a larger step [strata-subquery-too-many-steps]"}`},
		{"/api/v1/query?query=" + strings.Repeat("1%2B", 1001) + "1", 400, `{"status":"error","errorType":"bad_data","error":"the query has 1001 operators and parentheses, limit 1000 (-querier.max-expression-operators): split it into several queries or recording rules [strata-query-too-complex]"}`},
		{"/api/v1/query?query=up%7Bjob%3D~%22" + strings.Repeat("a", 256<<10) + "%22%7D", 400, `{"status":"error","errorType":"bad_data","error":"the query is 262155 bytes long, limit 262144 (-querier.max-expression-bytes) [strata-query-too-long]"}`},
	} {
		t.Run(tc.path[:min(len(tc.path), 100)], func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			if tc.wantBody != "" {
				require.Equal(t, tc.wantBody, rec.Body.String())
			}
		})
	}
}

func TestAPITenancy(t *testing.T) {
	c := startCluster(t, clusterOptions{deps: func(d *Deps) { d.Tenants = tenant.Resolver{MultitenancyEnabled: true} }})
	h := c.q.Handler()
	for _, tc := range []struct {
		name, header string
		wantCode     int
		wantBody     string
	}{
		{"missing", "", 401, `{"status":"error","errorType":"unauthorized","error":"no tenant id: set the X-Scope-OrgID header"}`},
		{"invalid", "../etc", 400, `{"status":"error","errorType":"bad_data","error":"invalid tenant id \"../etc\": character '/' at byte 2 is not allowed (letters, digits and !-_.*'() only)"}`},
		{"valid", "team-a", 200, `{"status":"success","data":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/labels", nil)
			if tc.header != "" {
				req.Header.Set(tenant.Header, tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code)
			require.Equal(t, tc.wantBody, rec.Body.String())
		})
	}
	// buildinfo needs no tenant.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/status/buildinfo", nil))
	require.Equal(t, http.StatusOK, rec.Code)
}

func TestAPIMaxQueryLength(t *testing.T) {
	c := startCluster(t, clusterOptions{cfg: func(cfg *Config) { cfg.MaxQueryLength = time.Hour }})
	rec := httptest.NewRecorder()
	c.q.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/query_range?query=up&start=0&end=3601&step=60", nil))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, `{"status":"error","errorType":"bad_data","error":"the query time range exceeds the limit (query length: 1h0m1s, limit: 1h0m0s); shorten it or raise -querier.max-query-length"}`, rec.Body.String())
}

func TestAPIHTTPDetails(t *testing.T) {
	c := startCluster(t, clusterOptions{deps: func(d *Deps) { d.Now = func() time.Time { return apiNow } }})
	loadAPIData(t, c)
	h := c.q.Handler()

	t.Run("gzip", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/label/__name__/values", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
		zr, err := gzip.NewReader(rec.Body)
		require.NoError(t, err)
		b, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, `{"status":"success","data":["http_requests_total","request_duration_seconds","up","weird"]}`, string(b))
	})
	t.Run("method not allowed", func(t *testing.T) {
		for _, path := range []string{"/api/v1/query", "/api/v1/label/job/values", "/api/v1/status/buildinfo"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, path, nil))
			require.Equal(t, http.StatusMethodNotAllowed, rec.Code, path)
		}
	})
	t.Run("stats", func(t *testing.T) {
		for _, tc := range []struct{ value, warning string }{
			{"true", ""},
			{"all", ""},
			{"yes", `"warnings":["value \"yes\" for parameter \"stats\" is deprecated and will be rejected in the next major release, use \"true\" or \"all\""]`},
		} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up&stats="+tc.value, nil))
			require.Equal(t, http.StatusOK, rec.Code)
			require.Contains(t, rec.Body.String(), `"stats":{"timings":{"evalTotalTime":`)
			require.Contains(t, rec.Body.String(), `"samples":{"totalQueryableSamples":2,`)
			if tc.warning != "" {
				require.Contains(t, rec.Body.String(), tc.warning)
			} else {
				require.NotContains(t, rec.Body.String(), "warnings")
			}
		}
	})
	t.Run("routes for the process mux", func(t *testing.T) {
		var r recordingRouter
		c.q.RegisterRoutes(&r)
		require.Contains(t, r.routes, "POST /api/v1/query_range api_v1_query_range")
		require.Contains(t, r.routes, "GET /api/v1/label/{name}/values api_v1_label_values")
		require.Len(t, r.routes, 17)
	})
}

type recordingRouter struct{ routes []string }

func (r *recordingRouter) Handle(pattern, route string, _ http.Handler) {
	r.routes = append(r.routes, pattern+" "+route)
}
