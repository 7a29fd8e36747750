package e2e

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// promqlCase is one PromQL range query compared between Strata and the local
// engine. empty says the answer is expected to have no series.
type promqlCase struct {
	query string
	empty bool
}

// promqlCases cover the functions and operators dashboards use, over series
// every run has: node_exporter's (job="node", and job="node-gone" whose series
// end in staleness markers inside the compared minute), Prometheus' own
// (job="prometheus", classic histograms) and Strata's (job="strata").
var promqlCases = []promqlCase{
	// rates of counters
	{query: `rate(node_cpu_seconds_total[30s])`},
	{query: `irate(node_cpu_seconds_total{mode="idle"}[10s])`},
	{query: `increase(node_network_receive_bytes_total[1m])`},
	{query: `rate(process_cpu_seconds_total[20s])`},
	{query: `resets(node_cpu_seconds_total[1m])`},
	{query: `changes(process_resident_memory_bytes[1m])`},
	{query: `delta(node_memory_MemFree_bytes[30s])`},
	{query: `deriv(process_resident_memory_bytes[1m])`},
	{query: `predict_linear(node_memory_MemAvailable_bytes[1m], 300)`},
	// aggregations
	{query: `sum by (mode) (rate(node_cpu_seconds_total[30s]))`},
	{query: `1 - avg by (cpu) (rate(node_cpu_seconds_total{mode="idle"}[30s]))`},
	{query: `avg by (job) (go_goroutines)`},
	{query: `max by (job) (process_resident_memory_bytes)`},
	{query: `min(up)`},
	{query: `stddev by (job) (scrape_duration_seconds)`},
	{query: `count by (job) ({__name__=~"go_.+"})`},
	{query: `quantile by (job) (0.5, scrape_duration_seconds)`},
	{query: `topk(3, rate(node_cpu_seconds_total[30s]))`},
	{query: `bottomk(2, go_memstats_heap_alloc_bytes)`},
	{query: `count_values("samples", scrape_samples_scraped)`},
	{query: `sum without (instance) (rate(prometheus_http_requests_total[30s]))`},
	// over_time functions and subqueries
	{query: `quantile_over_time(0.9, scrape_duration_seconds[1m])`},
	{query: `avg_over_time(node_load1[30s])`},
	{query: `sum_over_time(up[1m])`},
	{query: `last_over_time(go_memstats_alloc_bytes[10s])`},
	{query: `max_over_time(rate(node_cpu_seconds_total{mode="user"}[20s])[1m:5s])`},
	{query: `min_over_time(sum by (job) (rate(process_cpu_seconds_total[15s]))[2m:])`},
	// classic histograms and summaries
	{query: `histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[1m])))`},
	{query: `histogram_quantile(0.5, sum by (le, handler) (rate(prometheus_http_response_size_bytes_bucket[30s])))`},
	{query: `histogram_quantile(0.99, sum by (le, handler) (rate(prometheus_http_request_duration_seconds_bucket{handler="/metrics"}[20s])))`},
	{query: `histogram_quantile(0.9, sum by (le) (rate(strata_distributor_push_decompressed_body_bytes_bucket[1m])))`},
	{query: `histogram_quantile(0.99, sum by (le) (rate(strata_request_duration_seconds_bucket[30s])))`},
	{query: `rate(strata_ingester_push_duration_seconds_sum[1m]) / rate(strata_ingester_push_duration_seconds_count[1m])`},
	{query: `go_gc_duration_seconds{quantile="0.5"}`},
	{query: `rate(go_gc_duration_seconds_sum[1m]) / rate(go_gc_duration_seconds_count[1m])`},
	// joins, set operators, comparisons, arithmetic
	{query: `rate(process_cpu_seconds_total[30s]) * on(job, instance) group_left(version) go_info`},
	{query: `node_memory_MemAvailable_bytes / on() group_left node_memory_MemTotal_bytes{job="node"}`},
	{query: `node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes`},
	{query: `(rate(node_cpu_seconds_total[30s]) > 0) and on(cpu) (node_cpu_seconds_total{mode="idle"} > 0)`},
	{query: `up unless on(job) go_info{job="node"}`},
	{query: `go_goroutines > 5`},
	{query: `up == bool 1`},
	{query: `clamp_min(rate(node_network_transmit_bytes_total[30s]), 1)`},
	{query: `sort_desc(sum by (job) (scrape_samples_scraped))`},
	// offsets, absent, labels, time
	{query: `rate(node_cpu_seconds_total[30s] offset 20s)`},
	{query: `go_memstats_heap_alloc_bytes offset 30s - go_memstats_heap_alloc_bytes`},
	{query: `absent(nonexistent_metric_e2e)`},
	{query: `absent(up)`, empty: true},
	{query: `label_replace(up, "host", "$1", "instance", "([^:]+):.*")`},
	{query: `label_join(up, "where", "/", "job", "instance")`},
	{query: `timestamp(up)`},
	{query: `time() - node_boot_time_seconds`},
	{query: `hour(node_time_seconds) * 60 + minute(node_time_seconds)`},
	{query: `day_of_week() + day_of_month() + month()`},
	{query: `vector(time()) - scalar(max(node_time_seconds{job="node"}))`},
}

// localEngineOpts mirrors the querier's engine options (defaults of its
// flags: 5m lookback, @ and negative offsets allowed, 1m default subquery
// step) so that the local evaluation is the one Strata should give.
func localEngineOpts() promql.EngineOpts {
	return promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  2 * time.Minute,
		LookbackDelta:            5 * time.Minute,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   parser.NewParser(parser.Options{}),
	}
}

// comparePromQL reads every raw sample (staleness markers included) from
// Prometheus in [from, evalT], loads them into a local TSDB, and checks that
// each of promqlCases over the last minute before evalT gives the same answer
// from Strata's /api/v1/query_range as from the local v0.315.1 engine.
func comparePromQL(t *testing.T, promURL string, strataAPI *client, evalT, from time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw, err := newClient(promURL).remoteRead(ctx, from.UnixMilli(), evalT.UnixMilli(),
		&prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: labels.MetricName, Value: ".+"})
	require.NoError(t, err)
	db := teststorage.New(t)
	app := db.Appender(ctx)
	var samples, nan, stale int
	for _, ts := range raw {
		ls := toLabels(ts.Labels)
		for _, s := range ts.Samples {
			_, err := app.Append(0, ls, s.Timestamp, s.Value)
			require.NoError(t, err, "append %s @%d", ls, s.Timestamp)
			samples++
			switch {
			case value.IsStaleNaN(s.Value):
				stale++
			case math.IsNaN(s.Value):
				nan++
			}
		}
	}
	require.NoError(t, app.Commit())
	t.Logf("loaded %d series, %d samples (%d NaN, %d staleness markers) from Prometheus' remote read", len(raw), samples, nan, stale)

	engine := promql.NewEngine(localEngineOpts())
	t.Cleanup(func() { engine.Close() })
	start, step := evalT.Add(-time.Minute), 2*time.Second
	require.GreaterOrEqual(t, len(promqlCases), 30)
	for _, tc := range promqlCases {
		t.Run(tc.query, func(t *testing.T) {
			qry, err := engine.NewRangeQuery(ctx, db, nil, tc.query, start, evalT, step)
			require.NoError(t, err)
			defer qry.Close()
			res := qry.Exec(ctx)
			require.NoError(t, res.Err)
			want, err := engineResult(res)
			require.NoError(t, err)
			if tc.empty {
				require.Empty(t, want.Series, "local engine")
			} else {
				require.NotEmpty(t, want.Series, "local engine answered nothing: the query tests nothing")
			}
			got, err := strataAPI.queryRange(ctx, tc.query, start, evalT, step)
			require.NoError(t, err)
			if d := diffEval(want, got); d != "" {
				t.Fatalf("Strata's answer differs from the local engine's:\n%s", d)
			}
		})
	}
}

// engineResult converts a range query's result to the API form.
func engineResult(res *promql.Result) (apiResult, error) {
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return apiResult{}, fmt.Errorf("range query answered %T, want a matrix", res.Value)
	}
	r := apiResult{Type: "matrix"}
	for _, s := range m {
		if len(s.Histograms) > 0 {
			return apiResult{}, fmt.Errorf("series %s has native histograms; not compared here", s.Metric)
		}
		out := series{Labels: s.Metric}
		for _, p := range s.Floats {
			out.Points = append(out.Points, point{T: p.T, V: p.F})
		}
		r.Series = append(r.Series, out)
	}
	sortSeries(r.Series)
	return r, nil
}

// diffEval is diffRaw for evaluated answers: values within 1e-9 relative.
func diffEval(want, got apiResult) string {
	if want.Type != got.Type {
		return fmt.Sprintf("result type %s, want %s", got.Type, want.Type)
	}
	if len(want.Series) != len(got.Series) {
		return fmt.Sprintf("%d series, want %d:\n got: %s\nwant: %s", len(got.Series), len(want.Series), seriesNames(got), seriesNames(want))
	}
	for i := range want.Series {
		w, g := want.Series[i], got.Series[i]
		if !labels.Equal(w.Labels, g.Labels) {
			return fmt.Sprintf("series %d is %s, want %s", i, g.Labels, w.Labels)
		}
		if d := diffPoints(w.Points, g.Points, closeEnough); d != "" {
			return fmt.Sprintf("series %s: %s", w.Labels, d)
		}
	}
	return ""
}

func seriesNames(r apiResult) string {
	var out string
	for i, s := range r.Series {
		if i == 5 {
			return out + fmt.Sprintf(" ... (%d more)", len(r.Series)-5)
		}
		out += s.Labels.String() + " "
	}
	return out
}

// closeEnough: equal within 1e-9 relative; NaN equals NaN; infinities exact.
func closeEnough(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b:
		return true
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return false
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func floatBits(f float64) uint64 { return math.Float64bits(f) }
