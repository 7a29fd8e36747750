package blockupload

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/tenant"
)

// BenchmarkUpload uploads one 2h block (1,000 series, a sample every 15s,
// random values: 480,000 samples) through the handler into a filesystem
// bucket: start, files, finish (download and verification included).
// MB/s is the block's bytes; samples/s is reported beside it.
//
//	go test ./blockupload -run '^$' -bench Upload -benchtime 10x
func BenchmarkUpload(b *testing.B) {
	start := testNow.Add(-48 * time.Hour).Truncate(2 * time.Hour).UnixMilli()
	rnd := rand.New(rand.NewPCG(1, 2))
	var series []storage.Series
	for i := range 1000 {
		var s []chunks.Sample
		for ts := start; ts < start+2*time.Hour.Milliseconds(); ts += 15000 {
			s = append(s, sample{t: ts, f: float64(rnd.IntN(1e6)) / 100})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "bench", "i", strconv.Itoa(i)), s))
	}
	dir, err := tsdb.CreateBlock(series, b.TempDir(), 4*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(b, err)
	_, meta, files, order := blockFiles(b, dir)
	var size int64
	for _, f := range files {
		size += int64(len(f))
	}
	const samples = 1000 * 480

	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		bkt, err := filesystem.NewBucket(b.TempDir())
		require.NoError(b, err)
		h := New(Config{MaxFileBytes: 1 << 30, MaxBlockBytes: 1 << 30, FutureGrace: time.Minute}, Deps{
			Bucket: bkt, Tenants: tenant.Resolver{MultitenancyEnabled: true}, TempDir: b.TempDir(),
			Enabled: func(string) bool { return true }, Retention: func(string) time.Duration { return 0 },
			Log: slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(), Now: func() time.Time { return testNow },
		})
		mux := http.NewServeMux()
		h.Register(muxRouter{mux})
		srv := httptest.NewServer(mux)
		f := &fixture{bkt: bkt, srv: srv, h: h}
		id := ulidOf(b, dir)
		b.StartTimer()

		must(b, f.start(b, "a", id, meta))
		for _, p := range order {
			must(b, f.do(b, http.MethodPost, "a", id.String()+"/files?path="+p, bytes.NewReader(files[p]), int64(len(files[p]))))
		}
		must(b, f.finish(b, "a", id))

		b.StopTimer()
		srv.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(samples)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func must(b *testing.B, a answer) {
	if a.code != http.StatusOK {
		b.Fatalf("%d: %s", a.code, a.body)
	}
}
