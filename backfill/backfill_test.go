package backfill

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/blockupload"
	"github.com/strata-metrics/strata/tenant"
)

// omStart is where the test files' samples start: 2026-06-01 00:00 UTC.
var omStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// openMetrics is a file of two counters and a gauge, a sample a minute
// for hours (crossing 2h ranges), timestamps in seconds with decimals.
func openMetrics(hours int) []byte {
	var b bytes.Buffer
	b.WriteString("# TYPE http_requests counter\n# HELP http_requests Requests.\n")
	for _, code := range []string{"200", "500"} {
		for i := range hours * 60 {
			ts := omStart.Add(time.Duration(i) * time.Minute)
			fmt.Fprintf(&b, "http_requests_total{code=%q} %d %d.%03d\n", code, i*len(code), ts.Unix(), i%1000)
		}
	}
	b.WriteString("# TYPE temp gauge\n")
	for i := range hours * 60 {
		fmt.Fprintf(&b, "temp{room=\"a\"} %g %d\n", 20+math.Sin(float64(i)), omStart.Add(time.Duration(i)*time.Minute).Unix())
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

type point struct {
	series string
	t      int64
	v      float64
}

// readBlocks returns every sample of the blocks in dirs.
func readBlocks(t *testing.T, dirs []string) map[point]int {
	t.Helper()
	out := map[point]int{}
	for _, dir := range dirs {
		b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
		require.NoError(t, err)
		q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		var it chunkenc.Iterator
		for ss.Next() {
			s := ss.At()
			it = s.Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				out[point{s.Labels().String(), ts, v}]++
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
		require.NoError(t, b.Close())
	}
	return out
}

func TestBuildOpenMetrics(t *testing.T) {
	input := openMetrics(5)
	dirs, err := BuildOpenMetrics(context.Background(), input, t.TempDir())
	require.NoError(t, err)
	require.Len(t, dirs, 3, "5h from midnight: ranges 0-2h, 2-4h, 4-6h")
	got := readBlocks(t, dirs)
	require.Len(t, got, 3*5*60)
	for i := range 5 * 60 {
		ts := omStart.Add(time.Duration(i) * time.Minute)
		require.Equal(t, 1, got[point{`{__name__="http_requests_total", code="200"}`, ts.UnixMilli() + int64(i%1000), float64(i * 3)}], i)
		require.Equal(t, 1, got[point{`{__name__="temp", room="a"}`, ts.UnixMilli(), 20 + math.Sin(float64(i))}], i)
	}
	for _, d := range dirs {
		m, err := block.ReadMetaFile(d)
		require.NoError(t, err)
		require.Equal(t, m.MinTime/BlockRange, (m.MaxTime-1)/BlockRange, "a block lies in one 2h range")
		require.Equal(t, filepath.Base(d), m.ULID.String())
	}

	// The same file makes the same blocks, byte for byte: a second run
	// resumes the first.
	again, err := BuildOpenMetrics(context.Background(), input, t.TempDir())
	require.NoError(t, err)
	for i := range dirs {
		require.Equal(t, filepath.Base(dirs[i]), filepath.Base(again[i]))
		for _, f := range []string{"index", "chunks/000001", "meta.json"} {
			a, err := os.ReadFile(filepath.Join(dirs[i], f))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(again[i], f))
			require.NoError(t, err)
			require.Equal(t, a, b, f)
		}
	}
	// Another file, other ULIDs.
	other, err := BuildOpenMetrics(context.Background(), openMetrics(4), t.TempDir())
	require.NoError(t, err)
	require.NotEqual(t, filepath.Base(dirs[0]), filepath.Base(other[0]))
}

func TestBuildOpenMetricsRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no timestamp", "m 1\n# EOF\n", `sample of {__name__="m"} has no timestamp`},
		{"no samples", "# EOF\n", "no samples"},
		{"not openmetrics", "m{ 1 2\n# EOF\n", "parsing OpenMetrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildOpenMetrics(context.Background(), []byte(tc.in), t.TempDir())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

type muxRouter struct{ *http.ServeMux }

func (m muxRouter) Handle(pattern, _ string, h http.Handler) { m.ServeMux.Handle(pattern, h) }

// startServer serves the block upload API over an in-memory bucket, the
// tenant named by X-Scope-OrgID.
func startServer(t *testing.T) (objstore.Bucket, string) {
	return startServerWith(t, tenant.Resolver{MultitenancyEnabled: true})
}

func startServerWith(t *testing.T, tenants tenant.Resolver) (objstore.Bucket, string) {
	return startServerAt(t, objstore.NewInMemBucket(), tenants, "127.0.0.1:0")
}

// startServerOn serves bkt at addr (host:port; port 0 for any).
func startServerOn(t *testing.T, bkt objstore.Bucket, addr string) (objstore.Bucket, string) {
	return startServerAt(t, bkt, tenant.Resolver{MultitenancyEnabled: true}, addr)
}

func startServerAt(t *testing.T, bkt objstore.Bucket, tenants tenant.Resolver, addr string) (objstore.Bucket, string) {
	t.Helper()
	h := blockupload.New(blockupload.Config{MaxFileBytes: 1 << 30, MaxBlockBytes: 1 << 30, FutureGrace: time.Minute}, blockupload.Deps{
		Bucket: bkt, Tenants: tenants, TempDir: t.TempDir(),
		Enabled: func(t string) bool { return t == "team-a" }, Retention: func(string) time.Duration { return 0 },
		Log: slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(), Now: time.Now,
	})
	mux := http.NewServeMux()
	h.Register(muxRouter{mux})
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return bkt, srv.URL
}

func TestUploadResumesAndSkips(t *testing.T) {
	bkt, url := startServer(t)
	dir := t.TempDir()
	_, err := BuildOpenMetrics(context.Background(), openMetrics(5), dir)
	require.NoError(t, err)
	blocks, err := FindBlocks(dir)
	require.NoError(t, err)
	require.Len(t, blocks, 3)
	c := &Client{URL: url, Tenant: "team-a"}
	ctx := context.Background()

	// Half an upload: the first block whole, the second's first file.
	require.NoError(t, (&Uploader{Client: c}).Upload(ctx, blocks[:1]))
	_, err = c.Start(ctx, blocks[1].ID, blocks[1].Meta)
	require.NoError(t, err)
	f0 := blocks[1].Files[0]
	body, err := os.ReadFile(filepath.Join(blocks[1].Dir, f0.Path))
	require.NoError(t, err)
	require.NoError(t, c.File(ctx, blocks[1].ID, f0.Path, bytes.NewReader(body), f0.Size))

	var out bytes.Buffer
	// A clock that stands still: only the per-block lines are printed.
	p := NewProgress(&out, false, blocks, func() time.Time { return time.Unix(0, 0) })
	require.NoError(t, (&Uploader{Client: c, Progress: p}).Upload(ctx, blocks))
	p.Done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4, out.String())
	require.Contains(t, lines[0], "block "+blocks[0].ID.String()+" already in Strata, skipped; 1/3 blocks")
	require.Contains(t, lines[1], "block "+blocks[1].ID.String()+" uploaded")
	require.Contains(t, lines[2], "block "+blocks[2].ID.String()+" uploaded")
	require.Contains(t, lines[3], "done; 3/3 blocks")
	require.Contains(t, lines[3], "(100%)")
	require.Contains(t, lines[3], "0s left")

	for _, b := range blocks {
		require.True(t, visible(t, bkt, "team-a", b))
	}
}

func visible(t *testing.T, bkt objstore.Bucket, tenantID string, b LocalBlock) bool {
	ok, err := bkt.Exists(context.Background(), tenantID+"/"+b.ID.String()+"/meta.json")
	require.NoError(t, err)
	return ok
}

func TestUploadErrors(t *testing.T) {
	_, url := startServer(t)
	dir := t.TempDir()
	_, err := BuildOpenMetrics(context.Background(), openMetrics(1), dir)
	require.NoError(t, err)
	blocks, err := FindBlocks(dir)
	require.NoError(t, err)

	err = (&Uploader{Client: &Client{URL: url, Tenant: "team-b"}}).Upload(context.Background(), blocks)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusForbidden, se.Status)
	require.ErrorContains(t, err, "check block "+blocks[0].ID.String()+": server answered 403: block upload is disabled for tenant \"team-b\"")

	// A corrupt chunk file: the server says so, the block stays out.
	p := filepath.Join(blocks[0].Dir, blocks[0].Files[0].Path)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	for i := 20; i < len(b); i += 7 {
		b[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(p, b, 0o644))
	err = (&Uploader{Client: &Client{URL: url, Tenant: "team-a"}}).Upload(context.Background(), blocks)
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.Status)
	require.ErrorContains(t, err, "finish block "+blocks[0].ID.String()+": server answered 400: block "+blocks[0].ID.String()+": ")
	require.ErrorContains(t, err, "[strata-block-upload-corrupt]")
}

func TestFindBlocksRefuses(t *testing.T) {
	t.Run("no blocks", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, "wal"), 0o755))
		_, err := FindBlocks(dir)
		require.ErrorContains(t, err, "holds no TSDB blocks")
	})
	t.Run("bad meta", func(t *testing.T) {
		dir := t.TempDir()
		id := "01J0000000000000000000000A"
		require.NoError(t, os.MkdirAll(filepath.Join(dir, id), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, id, "meta.json"), []byte("{"), 0o644))
		_, err := FindBlocks(dir)
		require.ErrorContains(t, err, "decoding block meta")
	})
	t.Run("tombstones", func(t *testing.T) {
		dir := t.TempDir()
		_, err := BuildOpenMetrics(context.Background(), []byte("m 1 1\n# EOF\n"), dir)
		require.NoError(t, err)
		blocks, err := FindBlocks(dir)
		require.NoError(t, err)
		bdir := blocks[0].Dir
		ts := tombstones.NewMemTombstones()
		ts.AddInterval(1, tombstones.Interval{Mint: 0, Maxt: 10})
		_, err = tombstones.WriteFile(slog.New(slog.DiscardHandler), bdir, ts)
		require.NoError(t, err)
		_, err = FindBlocks(dir)
		require.ErrorContains(t, err, "has 1 deletions in its tombstones")
	})
}

// On a terminal the state is one line redrawn in place (a bar), with each
// block's event on a line of its own above it.
func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	blocks := []LocalBlock{{Bytes: 1e6}, {Bytes: 3e6}}
	p := NewProgress(&out, true, blocks, func() time.Time { return clock })
	clock = clock.Add(time.Second)
	p.sent(1e6)
	p.blockDone(blocks[0])
	clock = clock.Add(time.Second)
	p.sent(1e6)
	p.Done()
	s := out.String()
	require.Contains(t, s, "\r\033[K[=======                       ] 1/2 blocks, 1.0 MB/4.0 MB (25%), 1.0 MB/s, 3s left")
	require.Contains(t, s, "\r\033[Kbackfill: block 00000000000000000000000000 uploaded (1.0 MB)\n")
	require.True(t, strings.HasSuffix(s, "\r\033[K[===============               ] 1/2 blocks, 2.0 MB/4.0 MB (50%), 1.0 MB/s, 2s left\n"), "%q", s)
}

// With a tenants file the credentials name the tenant: the bearer token of
// team-a uploads, team-b's basic-auth user is team-b (not allowed), a
// wrong token is refused.
func TestUploadWithCredentials(t *testing.T) {
	cfg := auth.Config{MultitenancyEnabled: true, TenantsFile: filepath.Join("..", "auth", "testdata", "tenants.yaml"), TenantsReloadInterval: time.Minute}
	a, err := auth.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	bkt, url := startServerWith(t, cfg.Resolver(a))
	dir := t.TempDir()
	_, err = BuildOpenMetrics(context.Background(), openMetrics(1), dir)
	require.NoError(t, err)
	blocks, err := FindBlocks(dir)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, (&Uploader{Client: &Client{URL: url, BearerToken: "example-token-of-team-a"}}).Upload(ctx, blocks))
	require.True(t, visible(t, bkt, "team-a", blocks[0]))

	err = (&Uploader{Client: &Client{URL: url, BasicUser: "prometheus-b", BasicPassword: "example-password-of-b"}}).Upload(ctx, blocks)
	require.ErrorContains(t, err, `server answered 403: block upload is disabled for tenant "team-b"`)

	err = (&Uploader{Client: &Client{URL: url, BearerToken: "wrong"}}).Upload(ctx, blocks)
	var se *ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusUnauthorized, se.Status)
}

// Ranges without samples make no block (and cost no parse).
func TestBuildOpenMetricsGap(t *testing.T) {
	in := fmt.Sprintf("m 1 %d\nm 2 %d\n# EOF\n", omStart.Unix(), omStart.Add(72*time.Hour).Unix())
	dirs, err := BuildOpenMetrics(context.Background(), []byte(in), t.TempDir())
	require.NoError(t, err)
	require.Len(t, dirs, 2)
	require.Equal(t, map[point]int{
		{`{__name__="m"}`, omStart.UnixMilli(), 1}:                     1,
		{`{__name__="m"}`, omStart.Add(72 * time.Hour).UnixMilli(), 2}: 1,
	}, readBlocks(t, dirs))
}

// A server that does not answer (a compactor restarting) is tried again;
// a 4xx is final.
func TestUploadRetries(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	_, url := startServerOn(t, bkt, "127.0.0.1:0")
	// The address of a server not started yet: the first try finds no one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	dir := t.TempDir()
	_, err = BuildOpenMetrics(context.Background(), openMetrics(1), dir)
	require.NoError(t, err)
	blocks, err := FindBlocks(dir)
	require.NoError(t, err)
	var retries []string
	u := &Uploader{Client: &Client{URL: "http://" + addr, Tenant: "team-a"}, Retries: 3, RetryWait: time.Millisecond,
		OnRetry: func(err error, _ time.Duration) {
			retries = append(retries, err.Error())
			if len(retries) == 1 {
				startServerOn(t, bkt, addr)
			}
		}}
	require.NoError(t, u.Upload(context.Background(), blocks))
	require.Len(t, retries, 1)
	require.Contains(t, retries[0], "connection refused")
	require.True(t, visible(t, bkt, "team-a", blocks[0]))

	retries = nil
	u.Client = &Client{URL: url, Tenant: "team-b"}
	require.ErrorContains(t, u.Upload(context.Background(), blocks), "server answered 403")
	require.Empty(t, retries, "a 4xx is not retried")
}
