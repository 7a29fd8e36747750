package storegateway

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/proto/storepb"
)

// headerBlock is one block in a bucket with its index-header built and
// opened, and Prometheus' reader of the same index file for reference.
type headerBlock struct {
	bi  *blockIndex
	ref *index.Reader
	bkt *countingBucket
	m   *metrics
}

func newHeaderBlock(t testing.TB, series []storage.Series) *headerBlock {
	t.Helper()
	dir := createBlock(t, series)
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	meta := uploadBlock(t, bkt, "t1", dir)
	tb := objstore.NewPrefixedBucket(bkt, "t1")
	m := newMetrics(prometheus.NewRegistry())
	name := path.Join(meta.ULID.String(), block.IndexFilename)
	file := filepath.Join(t.TempDir(), headerFilename)
	read := func(ctx context.Context, what string, off, length int64) (io.ReadCloser, error) {
		return readIndexRange(ctx, tb, name, m, what, off, length)
	}
	n, err := buildHeader(context.Background(), read, sizeOf(meta, block.IndexFilename), file)
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, st.Size(), n)
	h, err := openHeader(file)
	require.NoError(t, err)
	ref, err := index.NewFileReader(filepath.Join(dir, block.IndexFilename), index.DecodePostingsRaw)
	require.NoError(t, err)
	hb := &headerBlock{bi: newBlockIndex(h, tb, name, m, blockKey{"t1", meta.ULID}, newLRU[seriesKey, []byte](0, m.seriesCache)), ref: ref, bkt: bkt, m: m}
	t.Cleanup(func() {
		require.NoError(t, hb.bi.Close())
		require.NoError(t, ref.Close())
	})
	return hb
}

// wideSeries adds to testSeries a label of many values ("k", 2,000 of
// them, each on a few series) so that lookups cross many samples of the
// postings offset table.
func wideSeries(n int) []storage.Series {
	out := testSeries(n, 8, 0, hour, 0)
	for i := range n {
		ls := labels.FromStrings("__name__", "w", "k", fmt.Sprintf("v%04d", i%2000), "x", fmt.Sprint(i))
		out = append(out, storage.NewListSeries(ls, []chunks.Sample{sample{t: 0, f: float64(i)}}))
	}
	return out
}

var headerMatcherCases = [][]*labels.Matcher{
	{matcher(labels.MatchEqual, "__name__", "m")},
	{matcher(labels.MatchEqual, "k", "v0000")},
	{matcher(labels.MatchEqual, "k", "v1999")},
	{matcher(labels.MatchEqual, "k", "v2000")},
	{matcher(labels.MatchEqual, "k", "")},
	{matcher(labels.MatchEqual, "nonexistent", "")},
	{matcher(labels.MatchEqual, "nonexistent", "x")},
	{matcher(labels.MatchRegexp, "k", "v0(0|3|7)1.")},
	{matcher(labels.MatchRegexp, "k", "v0001|v0033|v0064|v0999|v1999|nope")},
	{matcher(labels.MatchRegexp, "k", ".*7")},
	{matcher(labels.MatchRegexp, "k", "")},
	{matcher(labels.MatchNotRegexp, "k", "v1.*")},
	{matcher(labels.MatchNotEqual, "k", "v0005")},
	{matcher(labels.MatchNotEqual, "k", "")},
	{matcher(labels.MatchEqual, "__name__", "w"), matcher(labels.MatchNotRegexp, "k", "v0.*"), matcher(labels.MatchRegexp, "x", "1.*")},
	{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchNotEqual, "job", "a"), matcher(labels.MatchEqual, "env", "")},
	{matcher(labels.MatchRegexp, "__name__", ".+")},
	{matcher(labels.MatchRegexp, "i", "00(00|12|99)[0-4]"), matcher(labels.MatchNotRegexp, "env", "dev")},
	{matcher(labels.MatchEqual, "job", "zzz")},
	{matcher(labels.MatchRegexp, "job", "zzz|")},
	{matcher(labels.MatchEqual, "i", "")},
}

// The index-header reader answers as Prometheus' reader of the whole
// index: label names and values, postings of any value set, matchers,
// series entries, label names of series.
func TestBlockIndexEqualsIndexReader(t *testing.T) {
	hb := newHeaderBlock(t, wideSeries(4000))
	ctx := context.Background()
	bi, ref := hb.bi, hb.ref

	names, err := bi.LabelNames(ctx)
	require.NoError(t, err)
	want, err := ref.LabelNames(ctx)
	require.NoError(t, err)
	require.Equal(t, want, names)
	require.Equal(t, []string{"__name__", "env", "i", "job", "k", "x"}, names)
	for _, n := range append(names, "", "nonexistent", "a") {
		got, err := bi.SortedLabelValues(ctx, n, nil)
		require.NoError(t, err)
		want, err := ref.SortedLabelValues(ctx, n, nil)
		require.NoError(t, err)
		require.Equal(t, nilIfEmpty(want), nilIfEmpty(got), n)
		got, err = bi.LabelValues(ctx, n, &storage.LabelHints{Limit: 33})
		require.NoError(t, err)
		require.Equal(t, nilIfEmpty(want[:min(33, len(want))]), nilIfEmpty(got), n)
	}

	// Postings of value sets: present, absent, between and around
	// samples, duplicated, unsorted.
	rnd := rand.New(rand.NewPCG(1, 2))
	kvals, err := ref.SortedLabelValues(ctx, "k", nil)
	require.NoError(t, err)
	for round := range 300 {
		var vs []string
		for range 1 + rnd.IntN(1+round%40) {
			switch rnd.IntN(4) {
			case 0:
				vs = append(vs, fmt.Sprintf("v%04d", rnd.IntN(2100)))
			case 1:
				vs = append(vs, kvals[rnd.IntN(len(kvals))]+"0") // between two values
			default:
				vs = append(vs, kvals[rnd.IntN(len(kvals))])
			}
		}
		if round%7 == 0 {
			vs = append(vs, "", "a", "zzz", kvals[0], kvals[len(kvals)-1])
		}
		got, err := bi.Postings(ctx, "k", vs...)
		require.NoError(t, err)
		exp, err := ref.Postings(ctx, "k", slices.Clone(vs)...)
		require.NoError(t, err)
		requireSamePostings(t, exp, got, "%v", vs)
	}

	for _, ms := range append(headerMatcherCases, seriesCases[0].ms, seriesCases[3].ms, seriesCases[7].ms) {
		got, err := tsdb.PostingsForMatchers(ctx, bi, ms...)
		require.NoError(t, err)
		exp, err := tsdb.PostingsForMatchers(ctx, ref, ms...)
		require.NoError(t, err)
		gotRefs, err := index.ExpandPostings(got)
		require.NoError(t, err)
		wantRefs, err := index.ExpandPostings(exp)
		require.NoError(t, err)
		require.Equal(t, wantRefs, gotRefs, "%v", ms)

		gotNames, err := bi.LabelNamesFor(ctx, index.NewListPostings(gotRefs))
		require.NoError(t, err)
		wantNames, err := ref.LabelNamesFor(ctx, index.NewListPostings(wantRefs))
		require.NoError(t, err)
		require.Equal(t, wantNames, gotNames, "%v", ms)
	}

	// Every series entry, in batches as Series reads them, and one by one.
	k, v := index.AllPostingsKey()
	p, err := ref.Postings(ctx, k, v)
	require.NoError(t, err)
	all, err := index.ExpandPostings(p)
	require.NoError(t, err)
	require.Len(t, all, 8008)
	var (
		b, rb       labels.ScratchBuilder
		metas, rmts []chunks.Meta
	)
	for start := 0; start < len(all); start += seriesPerBatch {
		batch := all[start:min(start+seriesPerBatch, len(all))]
		seen := 0
		require.NoError(t, bi.eachSeries(ctx, batch, func(i int, entry []byte) error {
			require.Equal(t, seen, i)
			seen++
			require.NoError(t, bi.decodeSeries(entry, &b, &metas))
			require.NoError(t, ref.Series(batch[i], &rb, &rmts))
			require.Equal(t, rb.Labels(), b.Labels())
			require.Equal(t, rmts, metas)
			return nil
		}))
		require.Equal(t, len(batch), seen)
	}
	require.NoError(t, bi.Series(all[17], &b, &metas))
	require.NoError(t, ref.Series(all[17], &rb, &rmts))
	require.Equal(t, rb.Labels(), b.Labels())
	require.Equal(t, rmts, metas)

	for _, shard := range []uint64{0, 1, 2} {
		got, err := index.ExpandPostings(bi.ShardedPostings(index.NewListPostings(all), shard, 3))
		require.NoError(t, err)
		exp, err := index.ExpandPostings(ref.ShardedPostings(index.NewListPostings(all), shard, 3))
		require.NoError(t, err)
		require.Equal(t, exp, got)
	}
	require.Zero(t, hb.bkt.gets("index"), "the index object is never read whole")
}

func requireSamePostings(t *testing.T, want, got index.Postings, msg string, args ...any) {
	t.Helper()
	w, err := index.ExpandPostings(want)
	require.NoError(t, err)
	g, err := index.ExpandPostings(got)
	require.NoError(t, err)
	require.Equal(t, w, g, append([]any{msg}, args...)...)
}

// Series entries longer than the estimate are read again whole; nearby
// series share one range request.
func TestSeriesEntriesByRange(t *testing.T) {
	// One series with enough labels for an entry of more than
	// seriesEstimate bytes, between short ones.
	var series []storage.Series
	for i := range 3 {
		lb := labels.NewScratchBuilder(0)
		lb.Add("__name__", "long")
		lb.Add("i", fmt.Sprint(i))
		if i == 1 {
			for j := range 1200 {
				lb.Add(fmt.Sprintf("l%04d", j), "v")
			}
		}
		lb.Sort()
		series = append(series, storage.NewListSeries(lb.Labels(), []chunks.Sample{sample{t: 0, f: 1}}))
	}
	hb := newHeaderBlock(t, series)
	ctx := context.Background()
	p, err := hb.bi.Postings(ctx, "__name__", "long")
	require.NoError(t, err)
	refs, err := index.ExpandPostings(p)
	require.NoError(t, err)
	require.Len(t, refs, 3)
	require.Greater(t, int64(refs[2]-refs[1])*seriesByteAlign, int64(seriesEstimate), "the middle entry is long")
	ranges := testutil.ToFloat64(hb.m.indexRanges.WithLabelValues("series"))
	n := 0
	var (
		b, rb       labels.ScratchBuilder
		metas, rmts []chunks.Meta
	)
	require.NoError(t, hb.bi.eachSeries(ctx, refs, func(i int, entry []byte) error {
		require.NoError(t, hb.bi.decodeSeries(entry, &b, &metas))
		require.NoError(t, hb.ref.Series(refs[i], &rb, &rmts))
		require.Equal(t, rb.Labels(), b.Labels())
		require.Equal(t, rmts, metas)
		n++
		return nil
	}))
	require.Equal(t, 3, n)
	require.Equal(t, ranges+2, testutil.ToFloat64(hb.m.indexRanges.WithLabelValues("series")), "one for the three, one for the long one again")
}

// countingBucket counts Get and GetRange calls by the object's base name.
type countingBucket struct {
	objstore.Bucket
	mu            sync.Mutex
	getN, rangesN map[string]int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	if b.getN == nil {
		b.getN = map[string]int{}
	}
	b.getN[path.Base(name)]++
	b.mu.Unlock()
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	if b.rangesN == nil {
		b.rangesN = map[string]int{}
	}
	b.rangesN[path.Base(name)]++
	b.mu.Unlock()
	return b.Bucket.GetRange(ctx, name, off, length)
}

func (b *countingBucket) gets(base string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.getN[base]
}

func (b *countingBucket) ranges(base string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rangesN[base]
}

// A store-gateway answering every kind of request, cold, never reads a
// block's index object whole: only ranges of it.
func TestStoreGatewayNeverGetsWholeIndex(t *testing.T) {
	f := newFixture(t, "t1")
	bkt := &countingBucket{Bucket: f.bkt}
	h := newHarness(t, bkt, testConfig(t))
	ctx := context.Background()
	for _, sc := range seriesCases {
		req := &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()}
		got, _, err := callSeries(ctx, h.client, req)
		require.NoError(t, err)
		require.Equal(t, reference(t, f.dirs, 0, 6*hour, sc.ms, false), sortChunks(got), sc.name)
		_, err = h.client.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()})
		require.NoError(t, err)
		_, err = h.client.LabelValues(ctx, &storepb.LabelValuesRequest{Tenant: "t1", Name: "i", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()})
		require.NoError(t, err)
	}
	require.Zero(t, bkt.gets("index"))
	require.Positive(t, bkt.ranges("index"))
	// Four to build each header (magic, TOC, symbols, postings offset
	// table), and the rest for postings and series.
	require.Equal(t, float64(4*len(f.metas)), h.counter(t, "strata_storegateway_index_range_requests_total", "header"))
	require.Positive(t, h.counter(t, "strata_storegateway_index_range_requests_total", "postings"))
	require.Positive(t, h.counter(t, "strata_storegateway_index_range_requests_total", "series"))
	require.Positive(t, h.counter(t, "strata_storegateway_index_range_fetched_bytes_total", "postings"))
	require.Positive(t, h.counter(t, "strata_storegateway_index_range_fetched_bytes_total", "series"))
	require.Equal(t, float64(len(f.metas)), h.counter(t, "strata_storegateway_index_header_builds_total"))
	var onDisk int64
	for _, m := range f.metas {
		st, err := os.Stat(filepath.Join(h.g.cfg.DataDir, "t1", m.ULID.String(), headerFilename))
		require.NoError(t, err)
		onDisk += st.Size()
		require.Less(t, st.Size(), sizeOf(m, block.IndexFilename), "the header is smaller than the index")
	}
	require.Equal(t, float64(onDisk), h.counter(t, "strata_storegateway_index_header_bytes"))
}

// A damaged, truncated or missing local index-header is built again from
// the bucket on the next load, and the answers do not change.
func TestHeaderRebuiltWhenDamaged(t *testing.T) {
	f := newFixture(t, "t1")
	cfg := testConfig(t)
	cfg.IdleTimeout = time.Minute
	h := newHarness(t, f.bkt, cfg)
	ctx := context.Background()
	id := f.metas[4].ULID
	file := filepath.Join(cfg.DataDir, "t1", id.String(), headerFilename)
	req := &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, seriesCases[2].ms), BlockIds: []string{id.String()}}
	want, _, err := callSeries(ctx, h.client, req)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	good, err := os.ReadFile(file)
	require.NoError(t, err)

	unload := func() {
		h.clock.Advance(2 * time.Minute)
		h.g.closeIdle()
		require.Zero(t, h.counter(t, "strata_storegateway_blocks_loaded"))
	}
	damages := []struct {
		name string
		f    func(b []byte) []byte
	}{
		{"fixed part", func(b []byte) []byte { b[20] ^= 0xff; return b }},
		{"symbols", func(b []byte) []byte { b[headerFixedLen+10] ^= 0x01; return b }},
		{"postings table", func(b []byte) []byte { b[len(b)-20] ^= 0x01; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"empty", func([]byte) []byte { return nil }},
		{"longer", func(b []byte) []byte { return append(b, 0) }},
	}
	for i, d := range damages {
		unload()
		require.NoError(t, os.WriteFile(file, d.f(slices.Clone(good)), 0o644))
		got, _, err := callSeries(ctx, h.client, req)
		require.NoError(t, err, d.name)
		require.Equal(t, want, got, d.name)
		require.Equal(t, float64(i+2), h.counter(t, "strata_storegateway_index_header_builds_total"), d.name)
		rebuilt, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Equal(t, good, rebuilt, d.name)
	}
	unload()
	require.NoError(t, os.Remove(file))
	got, _, err := callSeries(ctx, h.client, req)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, float64(len(damages)+2), h.counter(t, "strata_storegateway_index_header_builds_total"))
	unload()
	_, _, err = callSeries(ctx, h.client, req)
	require.NoError(t, err)
	require.Equal(t, float64(len(damages)+2), h.counter(t, "strata_storegateway_index_header_builds_total"), "a good header is reused")
}

// FuzzDecodeHeader: decoding an index-header of any bytes, and reading
// through it, fails or works but does not panic or hang.
func FuzzDecodeHeader(f *testing.F) {
	for _, n := range []int{1, 40, 300} {
		hb := newHeaderBlock(f, wideSeries(n))
		b := slices.Clone(hb.bi.h.b)
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(b[:headerFixedLen])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		for n := range h.names {
			vals, err := h.values(n, 0)
			if err != nil {
				continue
			}
			_, _ = h.lookup(n, append(vals, "", "zzz"))
			_ = h.scan(n, strings.Repeat("v", 2), func(postingsEntry) bool { return true })
		}
		for i := range uint32(64) {
			_, _ = h.symbols.Lookup(i)
		}
		it := h.symbols.Iter()
		for it.Next() {
		}
	})
}
