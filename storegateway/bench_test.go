package storegateway

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/storepb"
)

// go test ./storegateway -run '^$' -bench Series -count 6 > new.txt; benchstat old.txt new.txt
//
// Series over one block of 10,000 series × 1h (2 chunks each) in a
// filesystem bucket, called directly (no gRPC): warm has every chunk and
// postings list cached, cold starts each request with empty caches (every
// chunk read from the bucket by range), the index already open.
func BenchmarkSeries(b *testing.B) {
	bkt, err := filesystem.NewBucket(b.TempDir())
	require.NoError(b, err)
	m := uploadBlock(b, bkt, "t1", createBlock(b, testSeries(10_000, 0, 0, hour, 0)))
	cfg := testConfig(b)
	lister := bucketindex.NewBucketLister(bkt)
	g, err := New(cfg, Deps{Bucket: bkt, Blocks: lister, Tenants: lister.Tenants, Log: discard(), Reg: prometheus.NewRegistry()})
	require.NoError(b, err)
	b.Cleanup(g.close)
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		ms   []*labels.Matcher
		skip bool
		cold bool
	}{
		{"warm/all", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}, false, false},
		{"cold/all", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}, false, true},
		{"warm/job=a,env=~prod", []*labels.Matcher{matcher(labels.MatchEqual, "job", "a"), matcher(labels.MatchRegexp, "env", "prod")}, false, false},
		{"cold/job=a,env=~prod", []*labels.Matcher{matcher(labels.MatchEqual, "job", "a"), matcher(labels.MatchRegexp, "env", "prod")}, false, true},
		{"warm/series-only", []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: hour, Matchers: protoMatchers(b, bc.ms), BlockIds: []string{m.ULID.String()}, SkipChunks: bc.skip}
			var series int
			send := func(r *storepb.SeriesResponse) error { series += len(r.Series); return nil }
			require.NoError(b, g.series(ctx, req, send)) // loads the block, warms the caches
			b.ReportAllocs()
			for b.Loop() {
				if bc.cold {
					g.chunks = newLRU[chunkKey, []byte](cfg.ChunksCacheMaxBytes, g.m.chunksCache)
					g.postings = newLRU[postingsKey, []storage.SeriesRef](cfg.PostingsCacheMaxBytes, g.m.postingsCache)
				}
				series = 0
				if err := g.series(ctx, req, send); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(series), "series/op")
		})
	}
}
