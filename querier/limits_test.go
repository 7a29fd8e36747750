package querier

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// limitedCluster is the API test data behind a Querier with per-tenant
// limits from a runtime config file.
func limitedCluster(t *testing.T, overrides string) (*cluster, *limits.Overrides, string) {
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
	}})
	loadAPIData(t, c)
	return c, ovr, file
}

type apiAnswer struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		Result []json.RawMessage `json:"result"`
	} `json:"data"`
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

func TestQueryLimits(t *testing.T) {
	c, _, _ := limitedCluster(t, `overrides:
  series:
    max_fetched_series_per_query: 2
  length:
    max_query_length: 5m
  lookback:
    max_query_lookback: 2m
  timeout:
    query_timeout: 1ns
  samples:
    max_fetched_samples_per_query: 100
`)
	end := ts(600)
	instant := func(q, at string) string { return "/api/v1/query?" + url.Values{"query": {q}, "time": {at}}.Encode() }
	rng := func(q, from string) string {
		return "/api/v1/query_range?" + url.Values{"query": {q}, "start": {from}, "end": {end}, "step": {"60"}}.Encode()
	}
	for _, tc := range []struct {
		name, tenant, path string
		wantCode           int
		wantType, wantErr  string
		wantSeries         int
	}{
		{"series: under the limit", "series", instant("up", end), 200, "", "", 2},
		{"series: over the limit", "series", instant(`{__name__=~"up|http_requests_total"}`, end), 422, "execution",
			`the query fetched more than 2 series, tenant "series"'s limit: select fewer series (more specific label matchers) or raise the limit (-querier.max-fetched-series-per-query, override "max_fetched_series_per_query") [strata-max-fetched-series-per-query]`, 0},
		{"series: counted over selectors", "series", instant("up + on() group_left sum(http_requests_total)", end), 422, "execution", "the query fetched more than 2 series", 0},
		{"series: other tenant unlimited", "other", instant(`{__name__=~"up|http_requests_total"}`, end), 200, "", "", 4},
		{"length: within", "length", rng("up", ts(300)), 200, "", "", 2},
		{"length: over", "length", rng("up", ts(0)), 400, "bad_data",
			`the query time range exceeds tenant "length"'s limit (query length: 10m0s, limit: 5m0s); shorten it or raise the limit (-limits.max-query-length, override "max_query_length") [strata-max-query-length]`, 0},
		{"length: instant queries pass", "length", instant("up", end), 200, "", "", 2},
		{"lookback: recent data", "lookback", instant("up", end), 200, "", "", 2},
		{"lookback: older data cut off", "lookback", instant("up", ts(300)), 200, "", "", 0},
		{"lookback: other tenant sees it", "other", instant("up", ts(300)), 200, "", "", 2},
		// Every series has 41 samples; 2 are called up.
		{"samples: under the limit", "samples", instant("count_over_time(up[10m])", end), 200, "", "", 2},
		{"samples: a sample read at many steps counts once", "samples", rng("up", ts(0)), 200, "", "", 2},
		{"samples: over the limit", "samples", instant(`count_over_time({__name__=~"up|http_requests_total"}[10m])`, end), 422, "execution",
			`the query read more than 100 samples, tenant "samples"'s limit: query a shorter range, fewer series or a coarser step over less data, or raise the limit (-querier.max-fetched-samples-per-query, override "max_fetched_samples_per_query") [strata-max-fetched-samples-per-query]`, 0},
		{"samples: over the limit in a range query", "samples", rng(`rate({__name__=~"up|http_requests_total"}[5m])`, ts(300)), 422, "execution", "the query read more than 100 samples", 0},
		{"samples: other tenant unlimited", "other", instant(`count_over_time({__name__=~"up|http_requests_total"}[10m])`, end), 200, "", "", 4},
		{"timeout: tenant's", "timeout", instant("up", end), 503, "timeout", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, a := limitedGet(t, c, tc.tenant, tc.path)
			require.Equal(t, tc.wantCode, code, "%+v", a)
			require.Equal(t, tc.wantType, a.ErrorType)
			require.Contains(t, a.Error, tc.wantErr)
			if code == 200 {
				require.Len(t, a.Data.Result, tc.wantSeries)
			}
		})
	}
}

func TestConcurrentQueryLimit(t *testing.T) {
	c, ovr, file := limitedCluster(t, "overrides:\n  a:\n    max_concurrent_queries: 1\n")
	path := "/api/v1/query?query=up&time=" + ts(600)

	// One query of a is evaluating (held here, so that no timing matters).
	require.True(t, c.q.running.acquire("a", 1))
	code, a := limitedGet(t, c, "a", path)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, `tenant "a" already runs 1 queries at once, its limit: retry later, or raise the limit (-querier.max-concurrent-queries-per-tenant, override "max_concurrent_queries") [strata-max-concurrent-queries]`, a.Error)
	code, _ = limitedGet(t, c, "b", path)
	require.Equal(t, http.StatusOK, code, "another tenant is not held back")

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
