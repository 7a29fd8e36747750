package querier

import (
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// limitedCluster is the API test data behind a Querier with per-tenant
// limits from a runtime config file.
func limitedCluster(t *testing.T, overrides string) (*cluster, *limits.Overrides, string) {
	t.Helper()
	return limitedClusterLabelled(t, overrides, nil)
}

// limitedClusterLabelled is limitedCluster with the tenant label of the
// querier's metrics capped by tl.
func limitedClusterLabelled(t *testing.T, overrides string, tl *tenant.LabelCap) (*cluster, *limits.Overrides, string) {
	t.Helper()
	var def limits.Limits
	def.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	require.NoError(t, os.WriteFile(file, []byte(overrides), 0o644))
	ovr, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: file, ReloadPeriod: time.Hour}, def, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, ovr.Load())
	c := startCluster(t, clusterOptions{deps: func(d *Deps) {
		d.Now = func() time.Time { return apiNow }
		d.Limits = ovr
		d.Tenants = tenant.Resolver{MultitenancyEnabled: true}
		d.TenantLabels = tl
	}})
	loadAPIData(t, c)
	return c, ovr, file
}

type apiAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// results counts the answer's results: the series of a query (data.result)
// or the entries of a list (/series, /labels, /query_exemplars).
func (a apiAnswer) results(t *testing.T) int {
	t.Helper()
	var list []json.RawMessage
	if json.Unmarshal(a.Data, &list) == nil {
		return len(list)
	}
	var q struct {
		Result []json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal(a.Data, &q), string(a.Data))
	return len(q.Result)
}

func limitedGet(t *testing.T, c *cluster, tenantID, path string) (int, apiAnswer) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("X-Scope-OrgID", tenantID)
	rec := httptest.NewRecorder()
	c.q.Handler().ServeHTTP(rec, req)
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	var a apiAnswer
	require.NoError(t, json.Unmarshal(b, &a), string(b))
	return rec.Code, a
}

// Paths of the API; an empty bound is left out.
func instantPath(q, at string) string {
	return "/api/v1/query?" + url.Values{"query": {q}, "time": {at}}.Encode()
}

func rangePath(q, from, to string) string {
	return "/api/v1/query_range?" + url.Values{"query": {q}, "start": {from}, "end": {to}, "step": {"60"}}.Encode()
}

func withRange(path string, v url.Values, from, to string) string {
	if from != "" {
		v.Set("start", from)
	}
	if to != "" {
		v.Set("end", to)
	}
	return path + "?" + v.Encode()
}

func seriesPath(match, from, to string) string {
	return withRange("/api/v1/series", url.Values{"match[]": {match}}, from, to)
}

func labelsPath(from, to string) string { return withRange("/api/v1/labels", url.Values{}, from, to) }

func labelValuesPath(name, from, to string) string {
	return withRange("/api/v1/label/"+name+"/values", url.Values{}, from, to)
}

func exemplarsPath(q, from, to string) string {
	return withRange("/api/v1/query_exemplars", url.Values{"query": {q}}, from, to)
}

// limitCase is one request of a tenant with limits, and its answer.
type limitCase struct {
	name, tenant, path string
	wantCode           int
	wantType, wantErr  string // wantErr: a part of the message
	wantResults        int    // when 200
	// wantReason is the reason the refusal is counted under in
	// strata_querier_queries_rejected_total; "" for none.
	wantReason string
}

func checkLimitCase(t *testing.T, c *cluster, tc limitCase) {
	t.Helper()
	rejected := func() float64 {
		var sum float64
		for _, r := range []string{idMaxFetchedSeries, idMaxFetchedSamples, idMaxQueryLength, idMaxConcurrentQueries, idQueryTimeout} {
			sum += testutil.ToFloat64(c.q.m.rejected.WithLabelValues(tc.tenant, r))
		}
		return sum
	}
	before, beforeReason := rejected(), 0.0
	if tc.wantReason != "" {
		beforeReason = testutil.ToFloat64(c.q.m.rejected.WithLabelValues(tc.tenant, tc.wantReason))
	}
	code, a := limitedGet(t, c, tc.tenant, tc.path)
	require.Equal(t, tc.wantCode, code, "%+v", a)
	require.Equal(t, tc.wantType, a.ErrorType)
	require.Contains(t, a.Error, tc.wantErr)
	if code == http.StatusOK {
		require.Equal(t, tc.wantResults, a.results(t), string(a.Data))
	}
	if tc.wantReason == "" {
		require.Equal(t, before, rejected(), "not a limit's refusal: not counted")
		return
	}
	require.Equal(t, beforeReason+1, testutil.ToFloat64(c.q.m.rejected.WithLabelValues(tc.tenant, tc.wantReason)), "counted under %s", tc.wantReason)
	require.Equal(t, before+1, rejected(), "counted once")
}

// The messages of the limits, whole.
const (
	msgSeriesLimit  = `the query fetched more than 2 series, tenant "series"'s limit: select fewer series (more specific label matchers) or raise the limit (-querier.max-fetched-series-per-query, override "max_fetched_series_per_query") [strata-max-fetched-series-per-query]`
	msgSamplesLimit = `the query read more than 100 samples, tenant "samples"'s limit: query a shorter range, fewer series or a coarser step over less data, or raise the limit (-querier.max-fetched-samples-per-query, override "max_fetched_samples_per_query") [strata-max-fetched-samples-per-query]`
	msgLength10m    = `the query time range exceeds tenant "length"'s limit (query length: 10m0s, limit: 5m0s); shorten it or raise the limit (-limits.max-query-length, override "max_query_length") [strata-max-query-length]`
)

func TestQueryLimits(t *testing.T) {
	c, _, _ := limitedCluster(t, `overrides:
  series:
    max_fetched_series_per_query: 2
  length:
    max_query_length: 5m
  lookback:
    max_query_lookback: 2m
  samples:
    max_fetched_samples_per_query: 100
`)
	end := ts(600)
	const upOrRequests = `{__name__=~"up|http_requests_total"}`
	for _, tc := range []limitCase{
		{"series: under the limit", "series", instantPath("up", end), 200, "", "", 2, ""},
		{"series: over the limit", "series", instantPath(upOrRequests, end), 422, "execution", msgSeriesLimit, 0, idMaxFetchedSeries},
		{"series: counted over selectors", "series", instantPath("up + on() group_left sum(http_requests_total)", end), 422, "execution", "the query fetched more than 2 series", 0, idMaxFetchedSeries},
		{"series: other tenant unlimited", "other", instantPath(upOrRequests, end), 200, "", "", 4, ""},
		{"series: /series under the limit", "series", seriesPath("up", "", ""), 200, "", "", 2, ""},
		{"series: /series over the limit", "series", seriesPath(upOrRequests, ts(0), end), 422, "execution", msgSeriesLimit, 0, idMaxFetchedSeries},
		{"series: /series with a smaller limit parameter truncates", "series", seriesPath(upOrRequests, "", "") + "&limit=1", 200, "", "", 1, ""},
		{"series: /series other tenant unlimited", "other", seriesPath(upOrRequests, "", ""), 200, "", "", 4, ""},
		{"series: /query_exemplars under the limit", "series", exemplarsPath("http_requests_total", ts(0), end), 200, "", "", 1, ""},
		{"series: /labels fetch no series", "series", labelsPath("", ""), 200, "", "", 5, ""},
		{"length: within", "length", rangePath("up", ts(300), end), 200, "", "", 2, ""},
		{"length: over", "length", rangePath("up", ts(0), end), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: instant queries pass", "length", instantPath("up", end), 200, "", "", 2, ""},
		{"length: /series over", "length", seriesPath("up", ts(0), end), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: /series within", "length", seriesPath("up", ts(300), end), 200, "", "", 2, ""},
		// Without a start, the range is cut to the limit rather than
		// refused: a client asking for "everything" still gets an answer.
		{"length: /series without a range is cut", "length", seriesPath("up", "", ""), 200, "", "", 2, ""},
		{"length: /series without a start is cut", "length", seriesPath("up", "", ts(200)), 200, "", "", 2, ""},
		{"length: /series without an end counts to now", "length", seriesPath("up", ts(0), ""), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: /labels over", "length", labelsPath(ts(0), end), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: /labels without a range", "length", labelsPath("", ""), 200, "", "", 5, ""},
		{"length: /label/job/values over", "length", labelValuesPath("job", ts(0), end), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: /label/job/values within", "length", labelValuesPath("job", ts(300), end), 200, "", "", 3, ""},
		{"length: /query_exemplars over", "length", exemplarsPath("http_requests_total", ts(0), end), 400, "bad_data", msgLength10m, 0, idMaxQueryLength},
		{"length: /query_exemplars within", "length", exemplarsPath("http_requests_total", ts(300), end), 200, "", "", 1, ""},
		{"length: other tenant unlimited", "other", labelsPath(ts(0), end), 200, "", "", 5, ""},
		{"lookback: recent data", "lookback", instantPath("up", end), 200, "", "", 2, ""},
		{"lookback: older data cut off", "lookback", instantPath("up", ts(300)), 200, "", "", 0, ""},
		{"lookback: other tenant sees it", "other", instantPath("up", ts(300)), 200, "", "", 2, ""},
		{"lookback: /series of recent data", "lookback", seriesPath("up", ts(0), end), 200, "", "", 2, ""},
		{"lookback: /series of older data cut off", "lookback", seriesPath("up", ts(0), ts(300)), 200, "", "", 0, ""},
		{"lookback: /labels of older data cut off", "lookback", labelsPath(ts(0), ts(300)), 200, "", "", 0, ""},
		{"lookback: /label/job/values of older data cut off", "lookback", labelValuesPath("job", ts(0), ts(300)), 200, "", "", 0, ""},
		// The exemplar is at +5m: before the lookback of 2m.
		{"lookback: /query_exemplars of older data cut off", "lookback", exemplarsPath("http_requests_total", ts(0), end), 200, "", "", 0, ""},
		{"lookback: other tenant's /query_exemplars", "other", exemplarsPath("http_requests_total", ts(0), end), 200, "", "", 1, ""},
		// Every series has 41 samples; 2 are called up.
		{"samples: under the limit", "samples", instantPath("count_over_time(up[10m])", end), 200, "", "", 2, ""},
		{"samples: a sample read at many steps counts once", "samples", rangePath("up", ts(0), end), 200, "", "", 2, ""},
		{"samples: over the limit", "samples", instantPath(`count_over_time({__name__=~"up|http_requests_total"}[10m])`, end), 422, "execution", msgSamplesLimit, 0, idMaxFetchedSamples},
		{"samples: over the limit in a range query", "samples", rangePath(`rate({__name__=~"up|http_requests_total"}[5m])`, ts(300), end), 422, "execution", "the query read more than 100 samples", 0, idMaxFetchedSamples},
		{"samples: other tenant unlimited", "other", instantPath(`count_over_time({__name__=~"up|http_requests_total"}[10m])`, end), 200, "", "", 4, ""},
		{"not a limit: a bad query is not counted", "series", instantPath("up{", end), 400, "bad_data", "invalid parameter", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkLimitCase(t, c, tc) })
	}
}

func TestQueryTimeoutLimit(t *testing.T) {
	c, _, _ := limitedCluster(t, "overrides:\n  slow:\n    query_timeout: 50ms\n")
	// The ingesters answer nothing until the request's context ends: every
	// request of "slow" ends at its timeout, whatever the machine's speed.
	for _, f := range c.ings {
		f.hang.Store(true)
	}
	const msg = `query timed out after 50ms, tenant "slow"'s limit: query a shorter range or fewer series, or raise the limit (-limits.query-timeout, override "query_timeout") [strata-query-timeout]`
	end := ts(600)
	for _, tc := range []limitCase{
		{"query", "slow", instantPath("up", end), 503, "timeout", msg, 0, idQueryTimeout},
		{"query_range", "slow", rangePath("rate(up[5m])", ts(0), end), 503, "timeout", msg, 0, idQueryTimeout},
		{"series", "slow", seriesPath("up", "", ""), 503, "timeout", msg, 0, idQueryTimeout},
		{"labels", "slow", labelsPath("", ""), 503, "timeout", msg, 0, idQueryTimeout},
		{"label values", "slow", labelValuesPath("job", "", ""), 503, "timeout", msg, 0, idQueryTimeout},
		{"query_exemplars", "slow", exemplarsPath("http_requests_total", ts(0), end), 503, "timeout", msg, 0, idQueryTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLimitCase(t, c, tc)
			require.Empty(t, c.q.running.running, "the request's slot was given back")
		})
	}
	// The client's own, shorter timeout is not the tenant's limit: it is
	// Prometheus' answer, not counted.
	checkLimitCase(t, c, limitCase{"client timeout", "slow", instantPath("up", end) + "&timeout=0.001", 503, "timeout", "query timed out in", 0, ""})
}

func TestConcurrentQueryLimit(t *testing.T) {
	c, ovr, file := limitedCluster(t, "overrides:\n  a:\n    max_concurrent_queries: 1\n")
	path := "/api/v1/query?query=up&time=" + ts(600)

	// One query of a is evaluating (held here, so that no timing matters).
	require.True(t, c.q.running.acquire("a", 1))
	const msg = `tenant "a" already runs 1 queries at once, its limit: retry later, or raise the limit (-querier.max-concurrent-queries-per-tenant, override "max_concurrent_queries") [strata-max-concurrent-queries]`
	end := ts(600)
	for _, tc := range []limitCase{
		{"query", "a", path, 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"query_range", "a", rangePath("up", ts(0), end), 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"series", "a", seriesPath("up", "", ""), 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"labels", "a", labelsPath("", ""), 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"label values", "a", labelValuesPath("job", "", ""), 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"query_exemplars", "a", exemplarsPath("http_requests_total", ts(0), end), 429, "unavailable", msg, 0, idMaxConcurrentQueries},
		{"another tenant is not held back", "b", path, 200, "", "", 2, ""},
		{"another tenant's labels", "b", labelsPath("", ""), 200, "", "", 5, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { checkLimitCase(t, c, tc) })
	}
	_, a := limitedGet(t, c, "a", path)
	require.Equal(t, msg, a.Error, "the whole message")
	var code int

	// The override file raises a's limit: applied on reload, no restart.
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    max_concurrent_queries: 2\n"), 0o644))
	require.NoError(t, ovr.Load())
	code, _ = limitedGet(t, c, "a", path)
	require.Equal(t, http.StatusOK, code)
	c.q.running.release("a", 1)
	code, _ = limitedGet(t, c, "a", path)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, c.q.running.running, "every slot given back")
}

func TestQueryRejectionsTenantLabelCap(t *testing.T) {
	// One tenant label slot: the first tenant to query takes it, the
	// refusals of the others are summed under tenant="<other>".
	tl, err := tenant.NewLabelCap(tenant.MetricsConfig{MaxTenantLabels: 1, TenantLabelIdleTimeout: time.Hour}, nil, nil)
	require.NoError(t, err)
	c, _, _ := limitedClusterLabelled(t, "overrides:\n  a:\n    max_query_length: 5m\n  b:\n    max_query_length: 5m\n", tl)
	for _, tc := range []struct {
		tenant   string
		wantCode int
	}{
		{"a", 200}, // takes the slot without being refused
		{"a", 400},
		{"b", 400},
		{"b", 400},
	} {
		path := labelsPath(ts(300), ts(600))
		if tc.wantCode == 400 {
			path = labelsPath(ts(0), ts(600))
		}
		code, a := limitedGet(t, c, tc.tenant, path)
		require.Equal(t, tc.wantCode, code, "%+v", a)
	}
	const want = `# HELP strata_querier_queries_rejected_total Queries and metadata requests refused or ended by a per-tenant query limit, by tenant and reason (the stable id ending the error message).
# TYPE strata_querier_queries_rejected_total counter
strata_querier_queries_rejected_total{reason="strata-max-query-length",tenant="<other>"} 2
strata_querier_queries_rejected_total{reason="strata-max-query-length",tenant="a"} 1
`
	require.NoError(t, testutil.GatherAndCompare(c.reg, strings.NewReader(want), "strata_querier_queries_rejected_total"))
}

// TestDefaultTenantShare: with multi-tenancy and no per-tenant limit, one
// tenant may hold half of -querier.max-concurrent, so another tenant's
// query always finds a slot.
func TestDefaultTenantShare(t *testing.T) {
	c, _, _ := limitedCluster(t, "overrides: {}\n")
	share := max(1, c.q.cfg.MaxConcurrent/2)
	for range share {
		require.True(t, c.q.running.acquire("busy", share))
	}
	path := "/api/v1/query?query=up&time=" + ts(600)
	code, a := limitedGet(t, c, "busy", path)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, a.Error, fmt.Sprintf(`tenant "busy" already runs %d queries at once`, share))
	code, _ = limitedGet(t, c, "other", path)
	require.Equal(t, http.StatusOK, code, "another tenant is served")
	for range share {
		c.q.running.release("busy", share)
	}
}
