package clustertest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// Queryable is tenant's view through the first running querier: the
// ingester fan-out, the replica merge and the chunk iterators.
func (c *Cluster) Queryable(t testing.TB, tenantID string) storage.Queryable {
	t.Helper()
	return c.Querier(t).Queryable(tenantID)
}

// Query returns the raw samples of the series selector matches in
// [from, to], as remote-write series: labels sorted, series sorted by
// labels, no exemplars. It compares with what Push sent. Warnings (an
// ingester down, its replicas answered) are not errors.
func (c *Cluster) Query(t testing.TB, tenantID, selector string, from, to time.Time) []prompb.TimeSeries {
	t.Helper()
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(selector)
	require.NoError(t, err)
	q, err := c.Queryable(t, tenantID).Querier(from.UnixMilli(), to.UnixMilli())
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, &storage.SelectHints{Start: from.UnixMilli(), End: to.UnixMilli()}, ms...)
	var out []prompb.TimeSeries
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ts := prompb.TimeSeries{}
		s.Labels().Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				tm, v := it.At()
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm, Value: v})
			case chunkenc.ValHistogram:
				tm, h := it.AtHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(tm, h))
			case chunkenc.ValFloatHistogram:
				tm, fh := it.AtFloatHistogram(nil)
				ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(tm, fh))
			}
		}
		require.NoError(t, it.Err())
		out = append(out, ts)
	}
	require.NoError(t, set.Err())
	slices.SortFunc(out, func(a, b prompb.TimeSeries) int {
		return labels.Compare(toLabels(a.Labels), toLabels(b.Labels))
	})
	return out
}

func toLabels(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}

// engine evaluates PromQL over a querier's Queryable, as the querier's own
// API does.
func engine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute,
		EnableAtModifier: true, EnableNegativeOffset: true,
	})
}

// QueryInstant evaluates expr at ts for tenant.
func (c *Cluster) QueryInstant(t testing.TB, tenantID, expr string, ts time.Time) parser.Value {
	t.Helper()
	q, err := engine().NewInstantQuery(context.Background(), c.Queryable(t, tenantID), nil, expr, ts)
	require.NoError(t, err)
	defer q.Close()
	res := q.Exec(context.Background())
	require.NoError(t, res.Err, "query %s", expr)
	return res.Value
}

// QueryRange evaluates expr over [start, end] at step for tenant.
func (c *Cluster) QueryRange(t testing.TB, tenantID, expr string, start, end time.Time, step time.Duration) promql.Matrix {
	t.Helper()
	q, err := engine().NewRangeQuery(context.Background(), c.Queryable(t, tenantID), nil, expr, start, end, step)
	require.NoError(t, err)
	defer q.Close()
	res := q.Exec(context.Background())
	require.NoError(t, res.Err, "query %s", expr)
	m, err := res.Matrix()
	require.NoError(t, err)
	return m
}
