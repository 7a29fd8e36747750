package blockupload

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/tenant"
)

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// testNow is the handler's clock in these tests.
var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// makeBlock writes a real TSDB block of three series, a sample every 15s
// over the hour starting at mint, and returns its directory.
func makeBlock(t testing.TB, mint int64) string {
	t.Helper()
	var series []storage.Series
	for i := range 3 {
		var s []chunks.Sample
		for ts := mint; ts < mint+time.Hour.Milliseconds(); ts += 15000 {
			s = append(s, sample{t: ts, f: float64(i*1000) + float64(ts-mint)/1000})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", string(rune('a'+i))), s))
	}
	dir, err := tsdb.CreateBlock(series, t.TempDir(), 2*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(t, err)
	return dir
}

// muxRouter mounts the handler on a plain ServeMux.
type muxRouter struct{ *http.ServeMux }

func (m muxRouter) Handle(pattern, _ string, h http.Handler) { m.ServeMux.Handle(pattern, h) }

type fixture struct {
	bkt     objstore.Bucket
	srv     *httptest.Server
	h       *Handler
	enabled map[string]bool
	cfg     Config
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{bkt: objstore.NewInMemBucket(), enabled: map[string]bool{"a": true, "b": true}, cfg: cfg}
	f.h = New(cfg, Deps{
		Bucket: f.bkt, Tenants: tenant.Resolver{MultitenancyEnabled: true}, TempDir: t.TempDir(),
		Enabled:   func(t string) bool { return f.enabled[t] },
		Retention: func(string) time.Duration { return 90 * 24 * time.Hour },
		Log:       slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(),
		Now: func() time.Time { return testNow },
	})
	mux := http.NewServeMux()
	f.h.Register(muxRouter{mux})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func defaultConfig() Config {
	return Config{MaxFileBytes: 1 << 20, MaxBlockBytes: 4 << 20, FutureGrace: 10 * time.Minute}
}

type answer struct {
	code int
	body string
}

func (f *fixture) do(t testing.TB, method, tenantID, path string, body io.Reader, size int64) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+RoutePrefix+path, body)
	require.NoError(t, err)
	req.ContentLength = size
	if tenantID != "" {
		req.Header.Set(tenant.Header, tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{resp.StatusCode, string(b)}
}

func (f *fixture) start(t testing.TB, tenantID string, id ulid.ULID, meta []byte) answer {
	return f.do(t, http.MethodPost, tenantID, id.String()+"/start", bytes.NewReader(meta), int64(len(meta)))
}

func (f *fixture) file(t testing.TB, tenantID string, id ulid.ULID, p string, b []byte) answer {
	return f.do(t, http.MethodPost, tenantID, id.String()+"/files?path="+p, bytes.NewReader(b), int64(len(b)))
}

func (f *fixture) finish(t testing.TB, tenantID string, id ulid.ULID) answer {
	return f.do(t, http.MethodPost, tenantID, id.String()+"/finish", nil, 0)
}

func (f *fixture) check(t *testing.T, tenantID string, id ulid.ULID) Status {
	t.Helper()
	a := f.do(t, http.MethodGet, tenantID, id.String()+"/check", nil, 0)
	require.Equal(t, http.StatusOK, a.code, a.body)
	var s Status
	require.NoError(t, json.Unmarshal([]byte(a.body), &s))
	return s
}

// blockFiles reads dir's meta.json and files (chunks first, then index).
func blockFiles(t testing.TB, dir string) (ulid.ULID, []byte, map[string][]byte, []string) {
	t.Helper()
	meta, err := os.ReadFile(filepath.Join(dir, block.MetaFilename))
	require.NoError(t, err)
	m, err := block.ReadMetaFile(dir)
	require.NoError(t, err)
	files := map[string][]byte{}
	var order []string
	entries, err := os.ReadDir(filepath.Join(dir, block.ChunksDirname))
	require.NoError(t, err)
	for _, e := range entries {
		p := block.ChunksDirname + "/" + e.Name()
		files[p], err = os.ReadFile(filepath.Join(dir, block.ChunksDirname, e.Name()))
		require.NoError(t, err)
		order = append(order, p)
	}
	files[block.IndexFilename], err = os.ReadFile(filepath.Join(dir, block.IndexFilename))
	require.NoError(t, err)
	return m.ULID, meta, files, append(order, block.IndexFilename)
}

// upload sends the whole block in dir and returns finish's answer.
func (f *fixture) upload(t *testing.T, tenantID, dir string) (ulid.ULID, answer) {
	t.Helper()
	id, meta, files, order := blockFiles(t, dir)
	a := f.start(t, tenantID, id, meta)
	require.Equal(t, http.StatusOK, a.code, a.body)
	for _, p := range order {
		a := f.file(t, tenantID, id, p, files[p])
		require.Equal(t, http.StatusOK, a.code, a.body)
	}
	return id, f.finish(t, tenantID, id)
}

// objects lists every object under prefix.
func objects(t *testing.T, bkt objstore.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), prefix, func(name string) error {
		out = append(out, name)
		return nil
	}, objstore.WithRecursiveIter()))
	return out
}

// visible reports whether block id of tenant has a meta.json.
func visible(t *testing.T, bkt objstore.Bucket, tenantID string, id ulid.ULID) bool {
	t.Helper()
	ok, err := bkt.Exists(context.Background(), tenantID+"/"+id.String()+"/"+block.MetaFilename)
	require.NoError(t, err)
	return ok
}

func metaWith(t *testing.T, meta []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(meta, &m))
	edit(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func ulidOf(t testing.TB, dir string) ulid.ULID {
	t.Helper()
	m, err := block.ReadMetaFile(dir)
	require.NoError(t, err)
	return m.ULID
}
