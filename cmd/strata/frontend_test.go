package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStackQueryFrontend runs -target=query-frontend in front of a
// -target=all stack: a range query split by the hour equals the
// querier's own answer, its second identical refresh comes from the
// results cache, and the rest of the API passes through.
func TestStackQueryFrontend(t *testing.T) {
	s := startStack(t, t.TempDir())
	d := makeTestData(time.Now())
	push(t, s.base, d)
	fe := startStack(t, t.TempDir(), "-target=query-frontend", "-frontend.downstream-url="+s.base,
		"-frontend.split-queries-by-interval=10m", "-instance.id=frontend-test")

	step := 30 * time.Second
	from, to := d.start.Truncate(step), d.end.Add(-15*time.Minute).Truncate(step)
	params := url.Values{"query": {`sum by (job) (rate(http_requests_total[5m]))`},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)}, "step": {"30"}}
	want := queryStrata(t, s.base, "/api/v1/query_range", params)
	for i := range 2 {
		got := queryStrata(t, fe.base, "/api/v1/query_range", params)
		require.Equal(t, "matrix", got.ResultType)
		requireSameSeries(t, fmt.Sprint("refresh ", i), normalise(t, want.Result), normalise(t, got.Result))
		got = queryStrata(t, fe.base, "/prometheus/api/v1/query_range", params)
		requireSameSeries(t, fmt.Sprint("/prometheus refresh ", i), normalise(t, want.Result), normalise(t, got.Result))
	}
	require.Positive(t, metricValue(t, fe.base, `strata_frontend_results_cache_lookups_total{backend="embedded",result="hit"}`))

	// With stats the query goes whole, compressed once.
	params.Set("stats", "all")
	got := queryStrata(t, fe.base, "/api/v1/query_range", params)
	requireSameSeries(t, "stats=all", normalise(t, want.Result), normalise(t, got.Result))
	require.Positive(t, metricValue(t, fe.base, `strata_frontend_query_range_requests_total{path="passthrough"}`))

	t.Run("passthrough", func(t *testing.T) { checkMetadataAPIs(t, fe.base, d) })
}

// metricValue reads one sample of base's /metrics.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	require.NotNil(t, m, "%s not in /metrics", series)
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}
