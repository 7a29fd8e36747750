package querier

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

func streamSeries(t testing.TB, ls labels.Labels, cs []chunk) *ingesterpb.StreamSeries {
	t.Helper()
	ss := &ingesterpb.StreamSeries{Labels: toProtoLabels(ls)}
	for _, c := range cs {
		ss.Chunks = append(ss.Chunks, &ingesterpb.Chunk{MinTimeMs: c.mint, MaxTimeMs: c.maxt, Encoding: uint32(c.enc), Data: c.data})
	}
	return ss
}

func badEncoding(ss *ingesterpb.StreamSeries) *ingesterpb.StreamSeries {
	ss.Chunks[0].Encoding = 99
	return ss
}

type fsample struct {
	t int64
	v float64
}

// xorChunks encodes samples into XOR chunks, a new chunk starting at each
// index in cuts.
func xorChunks(t testing.TB, replica int32, samples []fsample, cuts ...int) []chunk {
	t.Helper()
	var out []chunk
	for i := 0; i < len(samples); {
		end := len(samples)
		for _, c := range cuts {
			if c > i {
				end = min(end, c)
			}
		}
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		for _, s := range samples[i:end] {
			app.Append(0, s.t, s.v)
		}
		out = append(out, chunk{mint: samples[i].t, maxt: samples[end-1].t, data: c.Bytes(), enc: chunkenc.EncXOR, replica: replica})
		i = end
	}
	return out
}

func samplesOf(t testing.TB, it chunkenc.Iterator) []fsample {
	t.Helper()
	var out []fsample
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		require.Equal(t, chunkenc.ValFloat, vt)
		ts, v := it.At()
		out = append(out, fsample{ts, v})
	}
	require.NoError(t, it.Err())
	return out
}

func between(ss []fsample, mint, maxt int64) []fsample {
	var out []fsample
	for _, s := range ss {
		if s.t >= mint && s.t <= maxt {
			out = append(out, s)
		}
	}
	return out
}

func series(lset labels.Labels, mint, maxt int64, chunks ...[]chunk) *fetchedSeries {
	return &fetchedSeries{lset: lset, chunks: slices.Concat(chunks...), mint: mint, maxt: maxt}
}

func TestMergeReplicas(t *testing.T) {
	ls := labels.FromStrings("__name__", "up")
	all := make([]fsample, 10)
	for i := range all {
		all[i] = fsample{int64(i) * 10, float64(i)}
	}
	odd, even := []fsample{}, []fsample{}
	for i, s := range all {
		if i%2 == 0 {
			even = append(even, s)
		} else {
			odd = append(odd, s)
		}
	}
	for _, tc := range []struct {
		name       string
		replicas   [][]chunk
		mint, maxt int64
		want       []fsample
		wantChunks int // after dedupe
	}{
		{"identical replicas", [][]chunk{xorChunks(t, 0, all, 5), xorChunks(t, 1, all, 5), xorChunks(t, 2, all, 5)}, 0, 100, all, 2},
		{"identical, trimmed", [][]chunk{xorChunks(t, 0, all, 5), xorChunks(t, 1, all, 5)}, 15, 65, between(all, 15, 65), 2},
		{"cut differently", [][]chunk{xorChunks(t, 0, all, 3, 7), xorChunks(t, 1, all, 5)}, 0, 100, all, 5},
		{"one missed samples", [][]chunk{xorChunks(t, 0, all[:6]), xorChunks(t, 1, all)}, 0, 100, all, 2},
		{"disjoint halves", [][]chunk{xorChunks(t, 0, odd), xorChunks(t, 1, even)}, 0, 100, all, 2},
		{"one replica empty", [][]chunk{nil, xorChunks(t, 1, all)}, 0, 100, all, 1},
		{"range between samples", [][]chunk{xorChunks(t, 0, all)}, 11, 19, nil, 1},
		{"range after", [][]chunk{xorChunks(t, 0, all)}, 91, 200, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ss []storage.Series
			for _, r := range tc.replicas {
				ss = append(ss, series(ls, tc.mint, tc.maxt, r))
			}
			m := mergeReplicas(ss...).(*fetchedSeries)
			require.Len(t, m.chunks, tc.wantChunks)
			require.Equal(t, tc.want, samplesOf(t, m.Iterator(nil)))
		})
	}
}

// TestChunksIteratorRandom checks Next and Seek over random replicas that
// each missed some samples and cut chunks at random points against the
// samples themselves.
func TestChunksIteratorRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	ls := labels.FromStrings("__name__", "x")
	var it chunkenc.Iterator // reused across rounds, as the engine does
	for round := range 300 {
		n := 1 + rnd.IntN(200)
		truth := make([]fsample, n)
		ts := int64(rnd.IntN(100))
		for i := range truth {
			truth[i] = fsample{ts, float64(rnd.IntN(1000))}
			ts += 1 + int64(rnd.IntN(30))
		}
		nrep := 1 + rnd.IntN(3)
		held := make([][]fsample, nrep)
		for _, s := range truth {
			kept := false
			for r := range held {
				if rnd.IntN(10) < 8 {
					held[r] = append(held[r], s)
					kept = true
				}
			}
			if !kept {
				r := rnd.IntN(nrep)
				held[r] = append(held[r], s) // not sorted in yet: fix below
			}
		}
		var ss []storage.Series
		mint := truth[0].t - 5 + int64(rnd.IntN(int(truth[n-1].t-truth[0].t)+10))
		maxt := mint + int64(rnd.IntN(int(truth[n-1].t)+10))
		for r := range held {
			slices.SortFunc(held[r], func(a, b fsample) int { return int(a.t - b.t) })
			if len(held[r]) == 0 {
				continue
			}
			var cuts []int
			for c := 1 + rnd.IntN(40); c < len(held[r]); c += 1 + rnd.IntN(40) {
				cuts = append(cuts, c)
			}
			ss = append(ss, series(ls, mint, maxt, xorChunks(t, int32(r), held[r], cuts...)))
		}
		want := between(truth, mint, maxt)
		m := mergeReplicas(ss...)
		it = m.Iterator(it)
		require.Equal(t, want, samplesOf(t, it), "round %d: Next", round)

		// Seeks forward to random times, with Nexts in between.
		it = m.Iterator(it)
		pos := -1 // index in want of the current sample
		for range 20 {
			if rnd.IntN(3) == 0 {
				vt := it.Next()
				pos++
				if pos >= len(want) {
					require.Equal(t, chunkenc.ValNone, vt, "round %d", round)
					break
				}
				require.Equal(t, chunkenc.ValFloat, vt, "round %d", round)
			} else {
				target := mint - 10 + int64(rnd.IntN(int(maxt-mint)+40))
				vt := it.Seek(target)
				next := max(pos, 0)
				for next < len(want) && want[next].t < target {
					next++
				}
				pos = next
				if pos >= len(want) {
					require.Equal(t, chunkenc.ValNone, vt, "round %d: Seek(%d)", round, target)
					break
				}
				require.Equal(t, chunkenc.ValFloat, vt, "round %d: Seek(%d)", round, target)
			}
			gt, gv := it.At()
			require.Equal(t, want[pos], fsample{gt, gv}, "round %d", round)
		}
	}
}

func TestChunksIteratorHistograms(t *testing.T) {
	h := func(count uint64, hint histogram.CounterResetHint) *histogram.Histogram {
		return &histogram.Histogram{
			Count: count, Sum: float64(count), Schema: 0, CounterResetHint: hint,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(count)},
		}
	}
	// encode cuts a chunk of histograms with count = sum = t; a chunk
	// continuing prev gets the counter-reset header prev implies.
	encode := func(replica int32, prev chunkenc.Appender, ts ...int64) (chunk, chunkenc.Appender) {
		c := chunkenc.NewHistogramChunk()
		app, err := c.Appender()
		require.NoError(t, err)
		for i, t0 := range ts {
			p := chunkenc.Appender(nil)
			if i == 0 {
				p = prev
			}
			nc, _, _, err := app.AppendHistogram(p, 0, t0, h(uint64(t0), histogram.UnknownCounterReset), true)
			require.NoError(t, err)
			require.Nil(t, nc)
		}
		return chunk{mint: ts[0], maxt: ts[len(ts)-1], data: c.Bytes(), enc: chunkenc.EncHistogram, replica: replica}, app
	}
	first, firstApp := encode(0, nil, 1, 2, 3)
	second, _ := encode(0, firstApp, 4, 5)
	secondOther, _ := encode(1, firstApp, 4, 5)
	type point struct {
		t    int64
		hint histogram.CounterResetHint
	}
	read := func(s storage.Series, float bool) []point {
		var out []point
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			require.Equal(t, chunkenc.ValHistogram, vt)
			if float {
				ts, fh := it.AtFloatHistogram(nil)
				require.Equal(t, float64(ts), fh.Count)
				out = append(out, point{ts, fh.CounterResetHint})
			} else {
				ts, hh := it.AtHistogram(nil)
				require.Equal(t, uint64(ts), hh.Count)
				out = append(out, point{ts, hh.CounterResetHint})
			}
		}
		require.NoError(t, it.Err())
		return out
	}
	ls := labels.FromStrings("__name__", "h")
	const (
		unknown = histogram.UnknownCounterReset
		not     = histogram.NotCounterReset
	)
	for _, tc := range []struct {
		name       string
		chunks     []chunk
		mint, maxt int64
		want       []point
	}{
		{
			// chunkenc reports unknown for a chunk's first sample whatever
			// its header says (prometheus/prometheus#15346).
			name:   "one replica keeps the hints",
			chunks: []chunk{first, second},
			mint:   0, maxt: 10,
			want: []point{{1, unknown}, {2, not}, {3, not}, {4, unknown}, {5, not}},
		},
		{
			name:   "trimmed start keeps not_reset inside a chunk",
			chunks: []chunk{first},
			mint:   2, maxt: 10,
			want: []point{{2, not}, {3, not}},
		},
		{
			name:   "switching replica forgets the hint",
			chunks: []chunk{first, secondOther},
			mint:   0, maxt: 10,
			want: []point{{1, unknown}, {2, not}, {3, not}, {4, unknown}, {5, not}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := series(ls, tc.mint, tc.maxt, tc.chunks)
			require.Equal(t, tc.want, read(s, false))
			require.Equal(t, tc.want, read(s, true))
		})
	}
}

func TestReadQueryStreamSortsAndValidates(t *testing.T) {
	c := startCluster(t, clusterOptions{ingesters: 1})
	f := c.ings[0]
	samples := []fsample{{10, 1}, {20, 2}}
	good := func(name string) *ingesterpb.StreamSeries {
		return streamSeries(t, labels.FromStrings("__name__", name), xorChunks(t, 0, samples))
	}
	for _, tc := range []struct {
		name    string
		sent    []*ingesterpb.StreamSeries
		want    []string // metric names in answer order
		wantErr string
	}{
		{"sorted", []*ingesterpb.StreamSeries{good("a"), good("b")}, []string{"a", "b"}, ""},
		{"unsorted", []*ingesterpb.StreamSeries{good("b"), good("a")}, []string{"a", "b"}, ""},
		{"duplicate", []*ingesterpb.StreamSeries{good("a"), good("a")}, []string{"a"}, ""},
		{"bad encoding", []*ingesterpb.StreamSeries{badEncoding(good("a"))}, nil, "unknown encoding 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.scripted.Store(&tc.sent)
			defer f.scripted.Store(nil)
			client, err := c.pool.Get(f.addr)
			require.NoError(t, err)
			a, err := readQueryStream(t.Context(), client, &ingesterpb.QueryRequest{EndMs: math.MaxInt64}, 0, 0, math.MaxInt64)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, s := range a.series {
				names = append(names, s.lset.Get("__name__"))
				require.Equal(t, samples, samplesOf(t, s.Iterator(nil)))
			}
			require.Equal(t, tc.want, names)
		})
	}

	// A store-gateway sends a series once with the chunks of every block it
	// read: the copies of uncompacted replica blocks are dropped here, where
	// no merge of answers would see them.
	cs := xorChunks(t, 0, samples)
	copies := []*ingesterpb.StreamSeries{streamSeries(t, labels.FromStrings("__name__", "a"), append(append(append([]chunk{}, cs...), cs...), cs...))}
	f.scripted.Store(&copies)
	defer f.scripted.Store(nil)
	client, err := c.pool.Get(f.addr)
	require.NoError(t, err)
	a, err := readQueryStream(t.Context(), client, &ingesterpb.QueryRequest{EndMs: math.MaxInt64}, 0, 0, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, a.series, 1)
	require.Len(t, a.series[0].chunks, len(cs), "one copy of each chunk")
}
