package querier

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// benchReplicas returns 3 replicas' answers of n series × 120 samples (15s
// apart, one XOR chunk each); with lossy, the third replica missed every
// tenth sample, so its chunks overlap the others' without being identical.
func benchReplicas(b *testing.B, n int, lossy bool) [][]fetchedSeries {
	out := make([][]fetchedSeries, 3)
	for r := range out {
		for i := range n {
			var ss []fsample
			for k := range 120 {
				if lossy && r == 2 && k%10 == 0 {
					continue
				}
				ss = append(ss, fsample{int64(k) * 15000, float64(i*k) + 0.5})
			}
			ls := labels.FromStrings("__name__", "x", "job", fmt.Sprint(i%10), "i", fmt.Sprintf("%05d", i))
			out[r] = append(out[r], fetchedSeries{lset: ls, chunks: xorChunks(b, int32(r), ss), mint: math.MinInt64, maxt: math.MaxInt64})
		}
	}
	return out
}

func iterateAll(b *testing.B, set storage.SeriesSet) int {
	n := 0
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		for it.Next() != chunkenc.ValNone {
			n++
		}
	}
	if err := set.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkMergeSeriesSets merges 3 replicas of 1,000 series × 120 samples
// and iterates every sample: mergeReplicas against the generic
// storage.ChainedSeriesMerge, for identical and for differing replicas.
func BenchmarkMergeSeriesSets(b *testing.B) {
	for _, lossy := range []bool{false, true} {
		replicas := benchReplicas(b, 1000, lossy)
		for _, merge := range []struct {
			name string
			fn   storage.VerticalSeriesMergeFunc
		}{{"mergeReplicas", mergeReplicas}, {"ChainedSeriesMerge", storage.ChainedSeriesMerge}} {
			b.Run(fmt.Sprintf("lossy=%v/%s", lossy, merge.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sets := make([]storage.SeriesSet, len(replicas))
					for i := range replicas {
						sets[i] = &seriesSlice[fetchedSeries, *fetchedSeries]{series: replicas[i]}
					}
					if n := iterateAll(b, storage.NewMergeSeriesSet(sets, 0, merge.fn)); n != 120_000 {
						b.Fatalf("%d samples", n)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/120_000, "ns/sample")
			})
		}
	}
}

// BenchmarkDecodeChunks iterates 1,000 series × 120 samples of one
// replica: the cost of decoding chunks lazily, per encoding.
func BenchmarkDecodeChunks(b *testing.B) {
	xor := benchReplicas(b, 1000, false)[0]
	fh := make([]fetchedSeries, 1000)
	for i := range fh {
		c := chunkenc.NewFloatHistogramChunk()
		app, err := c.Appender()
		require.NoError(b, err)
		for k := range 120 {
			h := &histogram.FloatHistogram{
				Schema: 1, Count: float64(10 * k), Sum: float64(k),
				PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}}, PositiveBuckets: []float64{float64(k), float64(2 * k), float64(3 * k), float64(4 * k)},
			}
			nc, _, a, err := app.AppendFloatHistogram(nil, 0, int64(k)*15000, h, false)
			require.NoError(b, err)
			require.Nil(b, nc)
			app = a
		}
		fh[i] = fetchedSeries{lset: xor[i].lset, chunks: []chunk{{mint: 0, maxt: 119 * 15000, data: c.Bytes(), enc: chunkenc.EncFloatHistogram}}, mint: math.MinInt64, maxt: math.MaxInt64}
	}
	for _, tc := range []struct {
		name   string
		series []fetchedSeries
	}{{"xor", xor}, {"floathistogram", fh}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var it chunkenc.Iterator
			var h *histogram.FloatHistogram
			for b.Loop() {
				for i := range tc.series {
					it = tc.series[i].Iterator(it)
					for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
						if vt == chunkenc.ValFloatHistogram {
							_, h = it.AtFloatHistogram(h)
						}
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/120_000, "ns/sample")
		})
	}
}

// BenchmarkReadQueryStream receives and indexes one ingester's QueryStream
// of 1,000 series × 120 samples over loopback gRPC.
func BenchmarkReadQueryStream(b *testing.B) {
	c := startCluster(b, clusterOptions{ingesters: 1})
	var sent []*ingesterpb.StreamSeries
	for _, s := range benchReplicas(b, 1000, false)[0] {
		sent = append(sent, streamSeries(b, s.lset, s.chunks))
	}
	c.ings[0].scripted.Store(&sent)
	client, err := c.pool.Get(c.ings[0].addr)
	require.NoError(b, err)
	req := &ingesterpb.QueryRequest{EndMs: math.MaxInt64}
	b.ReportAllocs()
	for b.Loop() {
		a, err := readQueryStream(context.Background(), client, req, 0, math.MinInt64, math.MaxInt64)
		if err != nil || len(a.series) != 1000 {
			b.Fatal(err, len(a.series))
		}
	}
}

// BenchmarkQueryRange evaluates sum by (job) (rate(x[5m])) over 3,000
// series, each on 2 of 3 ingester fakes, for 1 hour at a 15s step: the
// whole read path from gRPC to the engine.
func BenchmarkQueryRange(b *testing.B) {
	c := startCluster(b, clusterOptions{})
	const series, t0 = 3000, int64(1_700_000_000_000)
	app := c.appender(context.Background())
	for i := range series {
		ls := labels.FromStrings("__name__", "x", "job", fmt.Sprintf("job-%d", i%20), "instance", fmt.Sprintf("host-%04d:9100", i))
		for k := range 4*60 + 21 { // 1h5m at 15s
			if _, err := app.Append(0, ls, 0, t0+int64(k)*15000, float64(i+k*10), nil, nil, storage.AppendV2Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	require.NoError(b, app.Commit())
	start, end := time.UnixMilli(t0+5*60*1000), time.UnixMilli(t0+65*60*1000)
	b.ReportAllocs()
	for b.Loop() {
		qry, err := c.q.engine.NewRangeQuery(context.Background(), c.q.Queryable("t"), nil, "sum by (job) (rate(x[5m]))", start, end, 15*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		res := qry.Exec(context.Background())
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		if m, _ := res.Matrix(); len(m) != 20 {
			b.Fatalf("%d series", len(m))
		}
		qry.Close()
	}
}

// BenchmarkFanOutSelect reads 1,000 series × 41 samples, each on all 3
// ingester fakes (RF=3), through one Select (QueryStream fan-out, merge of
// the replicas, every sample iterated): with every ingester answering, and
// with one hung (it answers nothing until its call is canceled, as a
// SIGSTOPped process).
func BenchmarkFanOutSelect(b *testing.B) {
	for _, hung := range []bool{false, true} {
		b.Run(fmt.Sprintf("hung=%v", hung), func(b *testing.B) {
			c := startCluster(b, clusterOptions{replicas: 3})
			loadSeries(b, c, 1000, 1_700_000_000_000)
			c.ings[1].hang.Store(hung)
			m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")
			b.ReportAllocs()
			for b.Loop() {
				qr, err := c.q.Queryable("t").Querier(0, 1<<62)
				if err != nil {
					b.Fatal(err)
				}
				if n := iterateAll(b, qr.Select(context.Background(), true, nil, m)); n != 41_000 {
					b.Fatalf("%d samples", n)
				}
				_ = qr.Close()
			}
		})
	}
}
