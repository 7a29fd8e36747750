package storegateway

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/storepb"
)

// go test ./storegateway -run '^$' -bench Series -count 6 > new.txt; benchstat old.txt new.txt
//
// Series over one block of 10,000 series × 1h (2 chunks each) in a
// filesystem bucket, called directly (no gRPC): warm has every chunk,
// series entry and postings list cached, cold starts each request with
// empty caches (every chunk and series entry read from the bucket by
// range), the index-header already open.
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
					g.seriesEntries = newLRU[seriesKey, []byte](cfg.SeriesCacheMaxBytes, g.m.seriesCache)
					for _, e := range g.entries() {
						e.ir.cache = g.seriesEntries
					}
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

// go test ./storegateway -run '^$' -bench FirstQuery -count 6 -benchtime 3x
//
// The first query of a block of 100,000 series (10 minutes each) in a
// filesystem bucket by a store-gateway with an empty -store-gateway.data-dir
// (cold: it reads what it needs of the block's index from the bucket), by
// one restarted over the local files the cold one left (restart), and cold
// again with the bucket as far as an object store (cold-remote: 10ms a
// request, 100 MiB/s).
// Besides the time: heap-B is the Go heap the loaded block holds after the
// query (GC'd, the store-gateway alive, caches empty), disk-B the local
// files it keeps for the block (memory-mapped, paged in as read), and
// index-B the bytes it read of the index object.
func BenchmarkFirstQuery(b *testing.B) {
	fsBkt, err := filesystem.NewBucket(b.TempDir())
	require.NoError(b, err)
	m := uploadBlock(b, fsBkt, "t1", createBlock(b, testSeries(100_000, 0, 0, 10*60*1000, 0)))
	lister := bucketindex.NewBucketLister(fsBkt)
	ctx := context.Background()
	req := &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: hour, BlockIds: []string{m.ULID.String()},
		Matchers: protoMatchers(b, []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m"), matcher(labels.MatchEqual, "i", "04242")})}
	for _, bc := range []struct {
		name    string
		restart bool
		bkt     objstore.Bucket
	}{
		{"cold", false, fsBkt},
		{"restart", true, fsBkt},
		{"cold-remote", false, &remoteBucket{Bucket: fsBkt, perRequest: 10 * time.Millisecond, bytesPerSec: 100 << 20}},
	} {
		restart, bkt := bc.restart, bc.bkt
		b.Run(bc.name, func(b *testing.B) {
			var heap, disk, fetched float64
			runs := 0
			for b.Loop() {
				b.StopTimer()
				cfg := testConfig(b)
				cfg.ChunksCacheMaxBytes, cfg.PostingsCacheMaxBytes = 0, 0
				if restart {
					reg := prometheus.NewRegistry()
					g, err := New(cfg, Deps{Bucket: bkt, Blocks: lister, Tenants: lister.Tenants, Log: discard(), Reg: reg})
					require.NoError(b, err)
					require.NoError(b, g.series(ctx, req, func(*storepb.SeriesResponse) error { return nil }))
					g.close()
				}
				reg := prometheus.NewRegistry()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				g, err := New(cfg, Deps{Bucket: bkt, Blocks: lister, Tenants: lister.Tenants, Log: discard(), Reg: reg})
				require.NoError(b, err)
				var series int
				require.NoError(b, g.series(ctx, req, func(r *storepb.SeriesResponse) error { series += len(r.Series); return nil }))
				b.StopTimer()
				require.Equal(b, 1, series)
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap += float64(after.HeapAlloc) - float64(before.HeapAlloc)
				fetched += metricValue(b, reg, "strata_storegateway_bucket_fetched_bytes_total", "index")
				require.NoError(b, filepath.WalkDir(cfg.DataDir, func(_ string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						st, err := d.Info()
						if err == nil {
							disk += float64(st.Size())
						}
					}
					return err
				}))
				runtime.KeepAlive(g)
				g.close()
				runs++
				b.StartTimer()
			}
			b.ReportMetric(heap/float64(runs), "heap-B/block")
			b.ReportMetric(disk/float64(runs), "disk-B/block")
			b.ReportMetric(fetched/float64(runs), "index-B/op")
		})
	}
}

// remoteBucket delays each read as an object store far away would: the
// first byte perRequest after the request, then bytesPerSec.
type remoteBucket struct {
	objstore.Bucket
	perRequest  time.Duration
	bytesPerSec float64
}

func (r *remoteBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	time.Sleep(r.perRequest)
	rc, err := r.Bucket.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &slowReader{rc, r.bytesPerSec}, nil
}

func (r *remoteBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	time.Sleep(r.perRequest)
	rc, err := r.Bucket.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	return &slowReader{rc, r.bytesPerSec}, nil
}

type slowReader struct {
	io.ReadCloser
	bytesPerSec float64
}

func (s *slowReader) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	time.Sleep(time.Duration(float64(n) / s.bytesPerSec * float64(time.Second)))
	return n, err
}
