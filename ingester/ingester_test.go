package ingester

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is 2026-11-25T03:00:00Z, the base of every test timestamp.
const t0 = int64(1795575600000)

func defaultConfig(t testing.TB, args ...string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	return cfg
}

// harness is one running ingester behind a real gRPC server on loopback.
type harness struct {
	t      testing.TB
	ing    *Ingester
	client ingesterpb.IngesterClient
	reg    *prometheus.Registry
	dir    string

	stopOnce sync.Once
	stopErr  error
	stopFn   func() error
}

// newIngester is the one place the package's tests construct an Ingester.
func newIngester(t testing.TB, cfg Config, d Deps) *Ingester {
	t.Helper()
	ing, err := New(cfg, d)
	require.NoError(t, err)
	return ing
}

// start runs an ingester with cfg over dir; see startDeps.
func start(t testing.TB, cfg Config, dir string) *harness {
	t.Helper()
	return startDeps(t, cfg, Deps{DataDir: dir})
}

// startWith is start with hook called on the ingester before Run.
func startWith(t testing.TB, cfg Config, dir string, hook func(*Ingester)) *harness {
	t.Helper()
	return startHooked(t, cfg, Deps{DataDir: dir}, hook)
}

// startDeps is start with d (its Reg is the harness' registry).
func startDeps(t testing.TB, cfg Config, d Deps) *harness {
	t.Helper()
	return startHooked(t, cfg, d, nil)
}

// startHooked runs an ingester built from d behind a real gRPC server on
// loopback, hook (if any) called before Run, and waits until it is ready;
// t's cleanup stops it.
func startHooked(t testing.TB, cfg Config, d Deps, hook func(*Ingester)) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	d.Reg = reg
	dir := d.DataDir
	ing := newIngester(t, cfg, d)
	if hook != nil {
		hook(ing)
	}

	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- ing.Run(ctx) }()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(srv, ing)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)

	h := &harness{t: t, ing: ing, client: ingesterpb.NewIngesterClient(conn), reg: reg, dir: dir}
	h.stopFn = func() error {
		cancel()
		err := <-runErr
		_ = conn.Close()
		srv.Stop()
		<-served
		return err
	}
	t.Cleanup(func() { _ = h.stop() })
	waitReady(t, ing)
	return h
}

// stop shuts the ingester down (as on SIGTERM) and returns Run's error.
func (h *harness) stop() error {
	h.stopOnce.Do(func() { h.stopErr = h.stopFn() })
	return h.stopErr
}

func waitReady(t testing.TB, ing *Ingester) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for ing.CheckReady(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("ingester not ready: %v", ing.CheckReady(context.Background()))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// --- building pushes -------------------------------------------------------

func lbls(kv ...string) []*ingesterpb.Label {
	out := make([]*ingesterpb.Label, 0, len(kv)/2)
	for k := 0; k+1 < len(kv); k += 2 {
		out = append(out, &ingesterpb.Label{Name: kv[k], Value: kv[k+1]})
	}
	return out
}

func floats(ls []*ingesterpb.Label, tv ...float64) *ingesterpb.TimeSeries {
	s := &ingesterpb.TimeSeries{Labels: ls}
	for k := 0; k+1 < len(tv); k += 2 {
		s.Samples = append(s.Samples, &ingesterpb.Sample{Timestamp: int64(tv[k]), Value: tv[k+1]})
	}
	return s
}

func marshal(t testing.TB, wr *ingesterpb.WriteRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(wr)
	require.NoError(t, err)
	return b
}

func (h *harness) push(tenantID string, series ...*ingesterpb.TimeSeries) (*ingesterpb.PushResponse, error) {
	return h.pushRequest(tenantID, &ingesterpb.WriteRequest{Timeseries: series})
}

func (h *harness) pushRequest(tenantID string, wr *ingesterpb.WriteRequest) (*ingesterpb.PushResponse, error) {
	return h.client.Push(context.Background(), &ingesterpb.PushRequest{Tenant: tenantID, WriteRequest: marshal(h.t, wr)})
}

func (h *harness) mustPush(tenantID string, series ...*ingesterpb.TimeSeries) {
	h.t.Helper()
	_, err := h.push(tenantID, series...)
	require.NoError(h.t, err)
}

// errDetails returns the code and ErrorDetails of a gRPC error.
func errDetails(t testing.TB, err error) (codes.Code, *ingesterpb.ErrorDetails) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	for _, d := range st.Details() {
		if ed, ok := d.(*ingesterpb.ErrorDetails); ok {
			return st.Code(), ed
		}
	}
	t.Fatalf("no ErrorDetails in %v", err)
	return 0, nil
}

// --- reading back ----------------------------------------------------------

// sample is one decoded sample: a float or an integer or float histogram.
type sample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

type seriesResult struct {
	labels  string
	chunks  int
	samples []sample
}

func matcher(typ ingesterpb.LabelMatcher_Type, name, value string) *ingesterpb.LabelMatcher {
	return &ingesterpb.LabelMatcher{Type: typ, Name: name, Value: value}
}

// query streams [start, end] and decodes every chunk, keeping the samples in
// range (chunks are whole).
func (h *harness) query(tenantID string, start, end int64, ms ...*ingesterpb.LabelMatcher) []seriesResult {
	h.t.Helper()
	res, err := h.queryLimit(tenantID, start, end, 0, ms...)
	require.NoError(h.t, err)
	return res
}

func (h *harness) queryLimit(tenantID string, start, end, limit int64, ms ...*ingesterpb.LabelMatcher) ([]seriesResult, error) {
	stream, err := h.client.QueryStream(context.Background(), &ingesterpb.QueryRequest{
		Tenant: tenantID, StartMs: start, EndMs: end, Matchers: ms, Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	var out []seriesResult
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, ss := range resp.Series {
			r := seriesResult{labels: labelString(ss.Labels), chunks: len(ss.Chunks)}
			for _, c := range ss.Chunks {
				chk, err := chunkenc.FromData(chunkenc.Encoding(c.Encoding), c.Data)
				require.NoError(h.t, err)
				it := chk.Iterator(nil)
				for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
					var s sample
					switch vt {
					case chunkenc.ValFloat:
						s.t, s.f = it.At()
					case chunkenc.ValHistogram:
						s.t, s.h = it.AtHistogram(nil)
					case chunkenc.ValFloatHistogram:
						s.t, s.fh = it.AtFloatHistogram(nil)
					}
					if s.t >= start && s.t <= end {
						r.samples = append(r.samples, s)
					}
				}
				require.NoError(h.t, it.Err())
			}
			out = append(out, r)
		}
	}
}

func labelString(ls []*ingesterpb.Label) string {
	s := "{"
	for k, l := range ls {
		if k > 0 {
			s += ", "
		}
		s += l.Name + "=" + `"` + l.Value + `"`
	}
	return s + "}"
}

// --- lifecycle -------------------------------------------------------------

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"ooo window", []string{"-ingester.out-of-order-time-window=30m"}, ""},
		{"zstd", []string{"-blocks-storage.tsdb.wal-compression=zstd"}, ""},
		{"bad compression", []string{"-blocks-storage.tsdb.wal-compression=lz4"}, "-blocks-storage.tsdb.wal-compression must be none, snappy or zstd"},
		{"tiny block range", []string{"-blocks-storage.tsdb.block-ranges-period=10s"}, "-blocks-storage.tsdb.block-ranges-period must be at least 1m"},
		{"retention below block range", []string{"-blocks-storage.tsdb.retention-period=1h"}, "-blocks-storage.tsdb.retention-period (1h0m0s) must be at least"},
		{"compaction interval", []string{"-blocks-storage.tsdb.head-compaction-interval=100ms"}, "-blocks-storage.tsdb.head-compaction-interval must be at least 1s"},
		{"negative exemplars", []string{"-blocks-storage.tsdb.max-exemplars=-1"}, "-blocks-storage.tsdb.max-exemplars must not be negative"},
		{"negative ooo", []string{"-ingester.out-of-order-time-window=-1m"}, "-ingester.out-of-order-time-window must not be negative"},
		{"negative metadata", []string{"-ingester.max-metadata-per-tenant=-1"}, "-ingester.max-metadata-per-tenant must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig(t, tc.args...)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestNewDoesNoIO(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ing := newIngester(t, defaultConfig(t), Deps{DataDir: dir})
	require.NoDirExists(t, dir)
	require.ErrorContains(t, ing.CheckReady(context.Background()), "starting")
}

func TestLazyOpen(t *testing.T) {
	dir := t.TempDir()
	h := start(t, defaultConfig(t), dir)
	tenantDir := filepath.Join(dir, "tsdb", "tenant-a")
	require.NoDirExists(t, tenantDir)

	// Reads of an unknown tenant are empty and open nothing.
	require.Empty(t, h.query("tenant-a", t0, t0+1000))
	names, err := h.client.LabelNames(context.Background(), &ingesterpb.LabelNamesRequest{Tenant: "tenant-a", StartMs: t0, EndMs: t0 + 1000})
	require.NoError(t, err)
	require.Empty(t, names.Names)
	require.NoDirExists(t, tenantDir)

	// Concurrent first pushes open the TSDB once and lose nothing.
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			_, err := h.push("tenant-a", floats(lbls("__name__", "up", "writer", string(rune('a'+w))), float64(t0), 1))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.DirExists(t, tenantDir)
	require.Len(t, h.query("tenant-a", t0, t0+1000), writers)
	require.Equal(t, 1, h.ing.numTenants())
}

func TestInvalidTenant(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	for _, id := range []string{"", "..", "a/b", "tenant\x00"} {
		_, err := h.push(id, floats(lbls("__name__", "up"), float64(t0), 1))
		code, det := errDetails(t, err)
		require.Equal(t, codes.InvalidArgument, code, id)
		require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class, id)
	}
	entries, err := os.ReadDir(filepath.Join(h.dir, "tsdb"))
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestShutdownRejectsPushes(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("tenant-a", floats(lbls("__name__", "up"), float64(t0), 1))
	h.stopFn0()

	require.ErrorContains(t, h.ing.CheckReady(context.Background()), "stopped")
	_, err := h.ing.Push(context.Background(), &ingesterpb.PushRequest{
		Tenant:       "tenant-a",
		WriteRequest: marshal(t, &ingesterpb.WriteRequest{Timeseries: []*ingesterpb.TimeSeries{floats(lbls("__name__", "up"), float64(t0+1000), 1)}}),
	})
	code, det := errDetails(t, err)
	require.Equal(t, codes.Unavailable, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, det.Class)
}

// stopFn0 stops the ingester but leaves the harness' error check to the test.
func (h *harness) stopFn0() {
	h.t.Helper()
	require.NoError(h.t, h.stop())
}

func TestRestartReplaysWAL(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig(t)
	h := start(t, cfg, dir)
	const rounds, nseries = 50, 20
	want := map[string][]sample{}
	for r := range rounds {
		var series []*ingesterpb.TimeSeries
		for s := range nseries {
			ls := lbls("__name__", "node_cpu_seconds_total", "cpu", string(rune('A'+s)), "tenant_round", "x")
			ts, v := t0+int64(r)*15000, float64(r*nseries+s)+0.5
			series = append(series, floats(ls, float64(ts), v))
			key := labelString(ls)
			want[key] = append(want[key], sample{t: ts, f: v})
		}
		// Two tenants, so that Run opens more than one TSDB at start.
		h.mustPush("tenant-a", series...)
		h.mustPush("tenant-b", series[:1]...)
	}
	require.NoError(t, h.stop())

	h2 := start(t, cfg, dir)
	require.Equal(t, 2, h2.ing.numTenants(), "both TSDBs open before ready")
	got := h2.query("tenant-a", t0, t0+int64(rounds)*15000)
	require.Len(t, got, nseries)
	for _, s := range got {
		require.Equal(t, want[s.labels], s.samples, s.labels)
	}
	require.Len(t, h2.query("tenant-b", t0, t0+int64(rounds)*15000), 1)

	// And appends go on after the replay.
	h2.mustPush("tenant-a", floats(lbls("__name__", "node_cpu_seconds_total", "cpu", "A", "tenant_round", "x"), float64(t0+int64(rounds)*15000), 1))
}

func TestRunSkipsForeignDirectories(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tsdb", "bad name"), 0o777))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tsdb", "stray-file"), nil, 0o666))
	h := start(t, defaultConfig(t), dir)
	require.Equal(t, 0, h.ing.numTenants())
}

func TestPushBeforeRunIsUnavailable(t *testing.T) {
	ing := newIngester(t, defaultConfig(t), Deps{DataDir: t.TempDir()})
	_, err := ing.Push(context.Background(), &ingesterpb.PushRequest{Tenant: "t"})
	code, det := errDetails(t, err)
	require.Equal(t, codes.Unavailable, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, det.Class)
	require.Contains(t, err.Error(), "starting")
}

// TestShutdownLosesNoAcknowledgedSample pushes from several writers while
// the ingester shuts down: every push either fails or is found after a
// restart, exactly once.
func TestShutdownLosesNoAcknowledgedSample(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig(t)
	h := start(t, cfg, dir)
	const writers, maxPushes = 4, 2000
	acked := make([]int, writers) // pushes acknowledged per writer, in order
	var (
		wg   sync.WaitGroup
		once sync.Once
	)
	stop := make(chan struct{})
	pushing := func() { once.Do(func() { close(stop) }) } // the writers are under way
	for w := range writers {
		wg.Go(func() {
			defer pushing()
			ls := lbls("__name__", "counter", "writer", string(rune('a'+w)))
			for k := range maxPushes {
				if _, err := h.push("t", floats(ls, float64(t0+int64(k)*1000), float64(k))); err != nil {
					return // once refused, a writer stops, as a client would fail over
				}
				acked[w]++
				if k == 50 {
					pushing()
				}
			}
		})
	}
	<-stop
	require.NoError(t, h.stop())
	wg.Wait()

	h2 := start(t, cfg, dir)
	got := h2.query("t", t0, t0+maxPushes*1000)
	require.Len(t, got, writers)
	for w, s := range got {
		require.GreaterOrEqual(t, len(s.samples), acked[w], "writer %d: acknowledged samples lost", w)
		for k, smp := range s.samples {
			require.Equal(t, t0+int64(k)*1000, smp.t, "writer %d: sample %d missing or repeated", w, k)
			require.Equal(t, float64(k), smp.f)
		}
	}
}

// TestHeadCompaction checks that the TSDB cuts blocks on its own and that
// queries read across blocks and head.
func TestHeadCompaction(t *testing.T) {
	h := start(t, defaultConfig(t, "-blocks-storage.tsdb.block-ranges-period=1m", "-blocks-storage.tsdb.head-compaction-interval=1s"), t.TempDir())
	ls := lbls("__name__", "up", "job", "a")
	const n = 4 * 60 // 4 minutes of 1 s samples: compactable past 1.5 block ranges
	for k := range n {
		h.mustPush("t", floats(ls, float64(t0+int64(k)*1000), float64(k)))
	}
	u, err := h.ing.acquire(context.Background(), "t", false)
	require.NoError(t, err)
	defer h.ing.release(u)
	deadline := time.Now().Add(30 * time.Second)
	for len(u.db.Blocks()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no block cut from the head")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := h.query("t", t0, t0+n*1000)
	require.Len(t, got, 1)
	require.Len(t, got[0].samples, n)
	for k, s := range got[0].samples {
		require.Equal(t, t0+int64(k)*1000, s.t)
	}
}
