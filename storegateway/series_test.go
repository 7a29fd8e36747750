package storegateway

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/proto/storepb"
)

// fixture is a tenant's blocks in a bucket: three consecutive 2h blocks,
// a second copy of the first (as another ingester of RF cuts it: same
// samples, identical chunks) and an overlapping block with other samples.
type fixture struct {
	bkt   objstore.Bucket
	dirs  []string
	metas []*block.Meta
}

func (f *fixture) ids() []string {
	out := make([]string, len(f.metas))
	for i, m := range f.metas {
		out[i] = m.ULID.String()
	}
	return out
}

func newFixture(t testing.TB, tenantID string) *fixture {
	t.Helper()
	f := &fixture{bkt: objstore.NewInMemBucket()}
	for _, spec := range []struct {
		from int64
		seed int
		n    int
	}{
		{0, 0, 150},
		{0, 0, 150}, // a replica's copy
		{2 * hour, 0, 150},
		{4 * hour, 0, 150},
		{hour, 7, 60}, // overlaps the first and second range, other values
	} {
		dir := createBlock(t, testSeries(spec.n, 4, spec.from, 2*hour, spec.seed))
		f.dirs = append(f.dirs, dir)
		f.metas = append(f.metas, uploadBlock(t, f.bkt, tenantID, dir))
	}
	return f
}

func matcher(t labels.MatchType, name, value string) *labels.Matcher {
	return labels.MustNewMatcher(t, name, value)
}

var seriesCases = []struct {
	name string
	ms   []*labels.Matcher
}{
	{"equal", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}},
	{"not equal", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchNotEqual, "job", "a")}},
	{"regexp", []*labels.Matcher{matcher(labels.MatchRegexp, "i", "000[0-4].*")}},
	{"not regexp", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchNotRegexp, "job", "a|b")}},
	{"empty-matching equal", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchEqual, "env", "")}},
	{"empty-matching only", []*labels.Matcher{matcher(labels.MatchEqual, "env", "")}},
	{"regexp matching empty", []*labels.Matcher{matcher(labels.MatchRegexp, "env", "prod|")}},
	{"not regexp of empty", []*labels.Matcher{matcher(labels.MatchNotRegexp, "env", "")}},
	{"no match", []*labels.Matcher{matcher(labels.MatchEqual, "job", "zzz")}},
	{"histograms", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "h")}},
	{"everything", []*labels.Matcher{matcher(labels.MatchRegexp, "__name__", ".+")}},
	{"set regexp across samples", []*labels.Matcher{matcher(labels.MatchRegexp, "i", "00000|00040|00077|00149|99999")}},
	{"suffix regexp", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchRegexp, "i", ".*7")}},
	{"not equal only", []*labels.Matcher{matcher(labels.MatchNotEqual, "job", "a")}},
}

var rangeCases = []struct {
	name       string
	mint, maxt int64
}{
	{"all", 0, 6 * hour},
	{"inside one block", 2*hour + 30*60*1000, 3 * hour},
	{"across blocks", hour + 1, 4*hour + 1},
	{"after the data", 7 * hour, 8 * hour},
}

// The answer is Prometheus' own block querier's, chunk for chunk, for
// every matcher kind and time range, with cold caches and warm ones.
func TestSeriesEqualsPrometheus(t *testing.T) {
	f := newFixture(t, "t1")
	h := newHarness(t, f.bkt, testConfig(t))
	ctx := context.Background()
	for _, rc := range rangeCases {
		for _, sc := range seriesCases {
			t.Run(rc.name+"/"+sc.name, func(t *testing.T) {
				want := reference(t, f.dirs, rc.mint, rc.maxt, sc.ms, false)
				if sc.name != "no match" && rc.name != "after the data" {
					require.NotEmpty(t, want)
				}
				req := &storepb.SeriesRequest{Tenant: "t1", StartMs: rc.mint, EndMs: rc.maxt, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()}
				for _, pass := range []string{"cold", "warm"} {
					got, queried, err := callSeries(ctx, h.client, req)
					require.NoError(t, err, pass)
					require.Equal(t, want, sortChunks(got), pass)
					require.ElementsMatch(t, f.ids(), queried, pass)
				}
			})
		}
	}
	require.Positive(t, h.counter(t, "strata_storegateway_cache_hits_total", "chunks"))
	require.Positive(t, h.counter(t, "strata_storegateway_cache_hits_total", "postings"))
	require.Positive(t, h.counter(t, "strata_storegateway_cache_hits_total", "series"))
	require.Equal(t, float64(len(f.metas)), h.counter(t, "strata_storegateway_blocks_loaded"))
	require.Equal(t, float64(len(f.metas)), h.counter(t, "strata_storegateway_index_header_builds_total"))
}

// A series in replicas' copies of a block comes once, with the chunks of
// every copy: identical ones are dropped by the querier's one merge, not
// here.
func TestSeriesSendsReplicaCopies(t *testing.T) {
	f := newFixture(t, "t1")
	h := newHarness(t, f.bkt, testConfig(t))
	ms := []*labels.Matcher{matcher(labels.MatchEqual, "i", "00001"), matcher(labels.MatchEqual, "__name__", "m")}
	got, _, err := callSeries(context.Background(), h.client, &storepb.SeriesRequest{
		Tenant: "t1", StartMs: 0, EndMs: 2*hour - 1, Matchers: protoMatchers(t, ms), BlockIds: f.ids()[:2],
	})
	require.NoError(t, err)
	require.Len(t, got, 1)
	one := reference(t, f.dirs[:1], 0, 2*hour-1, ms, false)
	var twice []gotChunk
	for _, c := range one[0].Chunks {
		twice = append(twice, c, c)
	}
	require.Equal(t, []gotSeries{{Labels: one[0].Labels, Chunks: twice}}, sortChunks(got), "each chunk of both copies, by time")
}

func TestSeriesSkipChunksAndLimit(t *testing.T) {
	f := newFixture(t, "t1")
	h := newHarness(t, f.bkt, testConfig(t))
	ctx := context.Background()
	for _, sc := range seriesCases {
		t.Run(sc.name, func(t *testing.T) {
			want := reference(t, f.dirs, hour, 3*hour, sc.ms, true)
			req := &storepb.SeriesRequest{Tenant: "t1", StartMs: hour, EndMs: 3 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids(), SkipChunks: true}
			got, _, err := callSeries(ctx, h.client, req)
			require.NoError(t, err)
			require.Equal(t, want, got)

			req.Limit = 5
			got, _, err = callSeries(ctx, h.client, req)
			require.NoError(t, err)
			require.Equal(t, want[:min(5, len(want))], got)
		})
	}
	require.Zero(t, h.counter(t, "strata_storegateway_chunk_range_requests_total"), "label sets only: no chunk read")
}

func TestSeriesErrors(t *testing.T) {
	f := newFixture(t, "t1")
	ctx := context.Background()
	// t2's prefix holds a copy of one of t1's blocks, meta.json and all.
	copied := f.metas[2]
	copyObjects(t, f.bkt, "t1/"+copied.ULID.String()+"/", "t2/"+copied.ULID.String()+"/")
	// A block whose index is garbage of the right size, and one whose
	// chunks file is corrupt.
	badIndex := uploadBlock(t, f.bkt, "t1", createBlock(t, testSeries(3, 0, 8*hour, hour, 0)))
	overwrite(t, f.bkt, "t1/"+badIndex.ULID.String()+"/index", sizeOf(badIndex, block.IndexFilename))
	badChunks := uploadBlock(t, f.bkt, "t1", createBlock(t, testSeries(3, 0, 10*hour, hour, 0)))
	overwrite(t, f.bkt, "t1/"+badChunks.ULID.String()+"/chunks/000001", sizeOf(badChunks, "chunks/000001"))

	h := newHarness(t, f.bkt, testConfig(t))
	all := protoMatchers(t, []*labels.Matcher{matcher(labels.MatchRegexp, "__name__", ".+")})
	good := f.metas[0].ULID.String()
	wantGood, _, err := callSeries(ctx, h.client, &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: 12 * hour, Matchers: all, BlockIds: []string{good}})
	require.NoError(t, err)
	require.NotEmpty(t, wantGood)
	for _, tc := range []struct {
		name   string
		tenant string
		blocks []string
		code   codes.Code
		// perBlock: the block fails on its own (block_errors); the
		// request's other blocks are served. Otherwise the request fails.
		perBlock bool
		wantErr  string
	}{
		{"another tenant's block", "t2x", []string{f.metas[0].ULID.String()}, codes.NotFound, true, "block " + f.metas[0].ULID.String() + " not found for tenant t2x"},
		{"a block copied under another tenant", "t2", []string{copied.ULID.String()}, codes.InvalidArgument, false, `belongs to tenant "t1"`},
		{"invalid tenant", "../t1", f.ids()[:1], codes.InvalidArgument, false, "tenant"},
		{"invalid block id", "t1", []string{"../../etc"}, codes.InvalidArgument, false, `invalid block id "../../etc"`},
		{"corrupt index", "t1", []string{badIndex.ULID.String()}, codes.DataLoss, true, "loading block " + badIndex.ULID.String() + " of tenant t1: building index-header"},
		{"corrupt chunks", "t1", []string{badChunks.ULID.String()}, codes.DataLoss, true, "of block " + badChunks.ULID.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &storepb.SeriesRequest{Tenant: tc.tenant, StartMs: 0, EndMs: 12 * hour, Matchers: all, BlockIds: tc.blocks}
			if !tc.perBlock {
				_, _, err := callSeries(ctx, h.client, req)
				require.Error(t, err)
				require.Equal(t, tc.code, status.Code(err), "%v", err)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			got, queried, failed, err := callSeriesFull(ctx, h.client, req)
			require.NoError(t, err)
			require.Empty(t, queried)
			require.Empty(t, got)
			require.Len(t, failed, 1)
			require.Equal(t, tc.blocks[0], failed[0].GetBlockId())
			require.Equal(t, tc.code, codes.Code(failed[0].GetCode()), "%v", failed[0])
			require.Contains(t, failed[0].GetMessage(), tc.wantErr)
			if tc.tenant != "t1" {
				return
			}
			// With a good block: it is served in full, the bad one reported.
			req.BlockIds = []string{good, tc.blocks[0]}
			req.StartMs, req.EndMs = 0, 12*hour
			got, queried, failed, err = callSeriesFull(ctx, h.client, req)
			require.NoError(t, err)
			require.Equal(t, []string{good}, queried)
			require.Len(t, failed, 1)
			require.Equal(t, tc.blocks[0], failed[0].GetBlockId())
			require.Equal(t, tc.code, codes.Code(failed[0].GetCode()))
			// The bad block's series may be sent in part; the good
			// block's are all there.
			for _, w := range wantGood {
				require.Contains(t, seriesLabels(got), w.Labels)
			}
		})
	}
	require.Equal(t, 4.0, h.counter(t, "strata_storegateway_block_load_failures_total"), "not found, refused and corrupt (twice)")
	require.Positive(t, h.counter(t, "strata_storegateway_block_errors_total"))
}

func seriesLabels(ss []gotSeries) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Labels
	}
	return out
}

// copyObjects copies every object under prefix from to prefix to.
func copyObjects(t testing.TB, bkt objstore.Bucket, from, to string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, bkt.Iter(ctx, from, func(name string) error {
		r, err := bkt.Get(ctx, name)
		if err != nil {
			return err
		}
		defer r.Close()
		return bkt.Upload(ctx, to+strings.TrimPrefix(name, from), r)
	}, objstore.WithRecursiveIter()))
}

func sizeOf(m *block.Meta, file string) int64 {
	for _, f := range m.Strata.Files {
		if f.Path == file {
			return f.Size
		}
	}
	return -1
}

// overwrite replaces object name with size bytes of garbage.
func overwrite(t testing.TB, bkt objstore.Bucket, name string, size int64) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	require.NoError(t, bkt.Upload(context.Background(), name, bytes.NewReader(b)))
}

// LabelNames and LabelValues report a bad block on its own too, answering
// from the others.
func TestLabelsBlockErrors(t *testing.T) {
	f := newFixture(t, "t1")
	ctx := context.Background()
	bad := uploadBlock(t, f.bkt, "t1", createBlock(t, testSeries(3, 0, 8*hour, hour, 0)))
	overwrite(t, f.bkt, "t1/"+bad.ULID.String()+"/index", sizeOf(bad, block.IndexFilename))
	h := newHarness(t, f.bkt, testConfig(t))
	good := f.metas[0].ULID.String()
	ids := []string{good, bad.ULID.String()}

	names, err := h.client.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: "t1", BlockIds: ids})
	require.NoError(t, err)
	want, err := h.client.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: "t1", BlockIds: ids[:1]})
	require.NoError(t, err)
	require.Equal(t, want.GetNames(), names.GetNames())
	require.Equal(t, []string{good}, names.GetQueriedBlocks())
	require.Len(t, names.GetBlockErrors(), 1)
	require.Equal(t, bad.ULID.String(), names.GetBlockErrors()[0].GetBlockId())
	require.Equal(t, codes.DataLoss, codes.Code(names.GetBlockErrors()[0].GetCode()))

	vals, err := h.client.LabelValues(ctx, &storepb.LabelValuesRequest{Tenant: "t1", Name: "__name__", BlockIds: ids})
	require.NoError(t, err)
	require.NotEmpty(t, vals.GetValues())
	require.Equal(t, []string{good}, vals.GetQueriedBlocks())
	require.Len(t, vals.GetBlockErrors(), 1)
	require.Equal(t, codes.DataLoss, codes.Code(vals.GetBlockErrors()[0].GetCode()))
}
