package blockupload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

var blockStart = testNow.Add(-48 * time.Hour).UnixMilli()

func TestUploadMakesBlockVisibleAndIndexed(t *testing.T) {
	f := newFixture(t, defaultConfig())
	dir := makeBlock(t, blockStart)
	id, a := f.upload(t, "a", dir)
	require.Equal(t, http.StatusOK, a.code, a.body)

	ctx := context.Background()
	m, err := block.ReadMeta(ctx, objstore.NewPrefixedBucket(f.bkt, "a"), id)
	require.NoError(t, err)
	require.Equal(t, block.Ext{Tenant: "a", Source: block.SourceBackfill, Files: m.Strata.Files}, m.Strata)
	_, _, files, order := blockFiles(t, dir)
	require.Len(t, m.Strata.Files, len(order))
	for i, p := range order {
		require.Equal(t, block.File{Path: p, Size: int64(len(files[p]))}, m.Strata.Files[i])
	}
	ix, err := bucketindex.ReadIndex(ctx, f.bkt, "a")
	require.NoError(t, err)
	require.Len(t, ix.Blocks, 1)
	require.Equal(t, id, ix.Blocks[0].ID)
	require.Equal(t, block.SourceBackfill, ix.Blocks[0].Source)
	require.NotContains(t, objects(t, f.bkt, "a/"), "a/"+id.String()+"/"+StateFilename)
	require.Equal(t, StateComplete, f.check(t, "a", id).State)
	require.Equal(t, StateAbsent, f.check(t, "b", id).State, "another tenant sees nothing of it")

	// Finishing again answers complete; starting again is refused.
	require.Equal(t, http.StatusOK, f.finish(t, "a", id).code)
	_, meta, _, _ := blockFiles(t, dir)
	a = f.start(t, "a", id, meta)
	require.Equal(t, http.StatusConflict, a.code)
	require.Contains(t, a.body, ReasonExists)

	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.started))
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.finished))
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonExists)))
	require.Equal(t, 3*240.0, testutil.ToFloat64(f.h.m.samples))
}

// A client that lost its connection asks what arrived and sends the rest;
// starting again with the same meta.json keeps what arrived.
func TestResumeKeepsReceivedFiles(t *testing.T) {
	f := newFixture(t, defaultConfig())
	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, StateAbsent, f.check(t, "a", id).State)
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	require.Equal(t, http.StatusOK, f.file(t, "a", id, order[0], files[order[0]]).code)

	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	st := f.check(t, "a", id)
	require.Equal(t, StateUploading, st.State)
	require.Len(t, st.Files, 1)
	require.Equal(t, order[0], st.Files[0].Path)
	require.Equal(t, int64(len(files[order[0]])), st.Files[0].Size)
	require.Len(t, st.Files[0].SHA256, 64)
	require.False(t, visible(t, f.bkt, "a", id), "nothing visible half way")

	for _, p := range order[1:] {
		require.Equal(t, http.StatusOK, f.file(t, "a", id, p, files[p]).code)
	}
	a := f.finish(t, "a", id)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.started), "a resumed upload counts once")

	// A different meta.json under the same ULID forgets the files.
	id2, meta2, files2, order2 := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "b", id2, meta2).code)
	require.Equal(t, http.StatusOK, f.file(t, "b", id2, order2[0], files2[order2[0]]).code)
	other := metaWith(t, meta2, func(m map[string]any) { m["maxTime"] = m["maxTime"].(float64) - 1 })
	require.Equal(t, http.StatusOK, f.start(t, "b", id2, other).code)
	require.Empty(t, f.check(t, "b", id2).Files)
}

func TestStartRefusesBadMeta(t *testing.T) {
	dir := makeBlock(t, blockStart)
	id, meta, _, _ := blockFiles(t, dir)
	for _, tc := range []struct {
		name   string
		tenant string
		id     ulid.ULID
		edit   func(m map[string]any)
		raw    string
		code   int
		want   string
	}{
		{name: "ok", edit: func(map[string]any) {}, code: http.StatusOK},
		{name: "not json", raw: "{", code: 400, want: "meta.json does not decode: unexpected EOF [" + ReasonBadMeta},
		{name: "version", edit: func(m map[string]any) { m["version"] = 2 }, code: 400, want: "version 2, want 1"},
		{name: "ulid differs", id: ulid.MustNew(1, nil), edit: func(map[string]any) {}, code: 400, want: "differs from the block named in the URL"},
		{name: "empty range", edit: func(m map[string]any) { m["maxTime"] = m["minTime"] }, code: 400, want: "is not before max_time"},
		{name: "level 0", edit: func(m map[string]any) { m["compaction"].(map[string]any)["level"] = 0 }, code: 400, want: "compaction level 0, want 1 to 16"},
		{name: "future", edit: func(m map[string]any) { m["maxTime"] = testNow.Add(time.Hour).UnixMilli() }, code: 400, want: "after now plus -compactor.block-upload-future-grace"},
		{name: "within grace", edit: func(m map[string]any) { m["maxTime"] = testNow.Add(5 * time.Minute).UnixMilli() }, code: http.StatusOK},
		{name: "past retention", edit: func(m map[string]any) {
			m["minTime"], m["maxTime"] = testNow.Add(-100*24*time.Hour).UnixMilli(), testNow.Add(-99*24*time.Hour).UnixMilli()
		}, code: 400, want: "older than the tenant's retention"},
		{name: "strata tenant", edit: func(m map[string]any) { m["strata"] = map[string]any{"tenant": "b"} }, code: 400, want: `belongs to tenant "b", not to "a" [` + ReasonOtherTenant},
		{name: "own strata tenant", edit: func(m map[string]any) { m["strata"] = map[string]any{"tenant": "a"} }, code: http.StatusOK},
		{name: "thanos tenant label", edit: func(m map[string]any) { m["thanos"] = map[string]any{"labels": map[string]any{"__tenant_id__": "b"}} }, code: 400, want: `external label __tenant_id__="b" names another tenant`},
		{name: "thanos other label", edit: func(m map[string]any) { m["thanos"] = map[string]any{"labels": map[string]any{"replica": "r1"}} }, code: http.StatusOK},
		{name: "disabled tenant", tenant: "c", edit: func(map[string]any) {}, code: http.StatusForbidden, want: "compactor_block_upload_enabled: true"},
		{name: "no tenant", tenant: "-", edit: func(map[string]any) {}, code: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaultConfig())
			body := []byte(tc.raw)
			if tc.edit != nil {
				body = metaWith(t, meta, tc.edit)
			}
			tid, bid := "a", id
			if tc.tenant != "" {
				tid = tc.tenant
			}
			if tc.id != (ulid.ULID{}) {
				bid = tc.id
			}
			if tid == "-" {
				tid = ""
			}
			a := f.start(t, tid, bid, body)
			require.Equal(t, tc.code, a.code, a.body)
			require.Contains(t, a.body, tc.want)
			if tc.code != http.StatusOK {
				require.Empty(t, objects(t, f.bkt, ""), "a refused start writes nothing")
			}
		})
	}
}

func TestFilesRefused(t *testing.T) {
	dir := makeBlock(t, blockStart)
	id, meta, files, order := blockFiles(t, dir)
	cfg := defaultConfig()
	cfg.MaxFileBytes = int64(len(files[block.IndexFilename])) + 10
	cfg.MaxBlockBytes = cfg.MaxFileBytes + 20
	big := bytes.Repeat([]byte{1}, int(cfg.MaxFileBytes)+1)
	for _, tc := range []struct {
		name, path string
		body       []byte
		size       int64 // 0: len(body)
		notStarted bool
		code       int
		want       string
	}{
		{name: "traversal", path: "../b/" + id.String() + "/index", body: []byte("x"), code: 400, want: `is not a block file: want index or chunks/NNNNNN [` + ReasonBadFile},
		{name: "traversal in chunks", path: "chunks/../../x", body: []byte("x"), code: 400, want: "is not a block file"},
		{name: "absolute", path: "/index", body: []byte("x"), code: 400, want: "is not a block file"},
		{name: "meta.json", path: "meta.json", body: []byte("{}"), code: 400, want: "is not a block file"},
		{name: "state", path: StateFilename, body: []byte("{}"), code: 400, want: "is not a block file"},
		{name: "mark", path: block.DeletionMarkFilename, body: []byte("{}"), code: 400, want: "is not a block file"},
		{name: "chunk name", path: "chunks/1", body: []byte("x"), code: 400, want: "is not a block file"},
		{name: "file too large", path: "chunks/000001", body: big, code: 413, want: "over -compactor.block-upload-max-file-bytes (354) [" + ReasonTooLarge},
		{name: "no length", path: "index", body: []byte("x"), size: -1, code: 411, want: "needs a Content-Length"},
		{name: "not started", path: "index", body: files[block.IndexFilename], notStarted: true, code: 404, want: ReasonNotStarted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, cfg)
			if !tc.notStarted {
				require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
			}
			size := tc.size
			if size == 0 {
				size = int64(len(tc.body))
			}
			var body = bytes.NewReader(tc.body)
			a := f.do(t, http.MethodPost, "a", id.String()+"/files?path="+tc.path, body, size)
			require.Equal(t, tc.code, a.code, a.body)
			require.Contains(t, a.body, tc.want)
			got := objects(t, f.bkt, "")
			if tc.notStarted {
				require.Empty(t, got)
			} else {
				require.Equal(t, []string{"a/" + id.String() + "/" + StateFilename}, got, "only the state is in the bucket")
			}
		})
	}

	t.Run("block too large", func(t *testing.T) {
		f := newFixture(t, cfg)
		require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
		require.Equal(t, http.StatusOK, f.file(t, "a", id, "index", files["index"]).code)
		a := f.file(t, "a", id, order[0], bytes.Repeat([]byte{1}, 100))
		require.Equal(t, 413, a.code, a.body)
		require.Contains(t, a.body, "over -compactor.block-upload-max-block-bytes")
		require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonTooLarge)))
	})
}

// A block that does not read is refused at finish with what is wrong, and
// nothing of it stays in the bucket.
func TestFinishRefusesCorruptBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"index garbage", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "index")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			for i := 100; i < len(b) && i < 400; i++ {
				b[i] ^= 0xff
			}
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, "does not open (index or chunks corrupt)"},
		{"chunks truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "chunks", "000001")
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, fi.Size()/2))
		}, "chunk reference"},
		{"sample count", func(t *testing.T, dir string) {
			m, err := block.ReadMetaFile(dir)
			require.NoError(t, err)
			m.Stats.NumSamples++
			require.NoError(t, block.WriteMetaFile(dir, m))
		}, "meta.json says 721 samples, the chunks hold 720"},
		{"range too narrow", func(t *testing.T, dir string) {
			m, err := block.ReadMetaFile(dir)
			require.NoError(t, err)
			m.MaxTime -= 30 * 60 * 1000
			require.NoError(t, block.WriteMetaFile(dir, m))
		}, "is outside the block's range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaultConfig())
			dir := makeBlock(t, blockStart)
			tc.edit(t, dir)
			id, a := f.upload(t, "a", dir)
			require.Equal(t, http.StatusBadRequest, a.code, a.body)
			require.Contains(t, a.body, tc.want)
			require.Contains(t, a.body, "["+ReasonCorrupt+"]")
			require.Empty(t, objects(t, f.bkt, ""), "nothing of a corrupt block stays")
			require.Equal(t, StateAbsent, f.check(t, "a", id).State)
			require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonCorrupt)))
			require.Zero(t, testutil.ToFloat64(f.h.m.finished))
		})
	}
}

func TestFinishWithoutIndex(t *testing.T) {
	f := newFixture(t, defaultConfig())
	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	require.Equal(t, http.StatusOK, f.file(t, "a", id, order[0], files[order[0]]).code)
	a := f.finish(t, "a", id)
	require.Equal(t, http.StatusBadRequest, a.code)
	require.True(t, strings.Contains(a.body, "no index was uploaded"), a.body)
	require.False(t, visible(t, f.bkt, "a", id))
}

// An upload in progress (or abandoned) is a partial block to the
// compactor's index updater: not in the index, and aged by its newest
// object, so the compactor deletes it once -compactor.partial-block-deletion-delay
// passed without a file arriving.
func TestUploadInProgressIsPartial(t *testing.T) {
	f := newFixture(t, defaultConfig())
	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	require.Equal(t, http.StatusOK, f.file(t, "a", id, order[0], files[order[0]]).code)

	ix, rep, err := bucketindex.NewUpdater(f.bkt, slog.New(slog.DiscardHandler), func() time.Time { return testNow }).Update(context.Background(), "a")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks)
	require.Len(t, rep.Partial, 1)
	require.Equal(t, id, rep.Partial[0].ID)
}

// sizeCheckingBucket fails an upload whose reader does not tell its size.
type sizeCheckingBucket struct {
	objstore.Bucket
	t *testing.T
}

func (b sizeCheckingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if _, err := objstore.TryToGetSize(r); err != nil {
		b.t.Errorf("upload of %s: the bucket cannot tell the size: %v", name, err)
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

// The S3 client buffers whole multipart parts (hundreds of MB) for a
// reader whose size it cannot tell: files are streamed with theirs.
func TestFilesTellTheBucketTheirSize(t *testing.T) {
	f := newFixture(t, defaultConfig())
	f.h.d.Bucket = sizeCheckingBucket{Bucket: f.bkt, t: t}
	_, a := f.upload(t, "a", makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, a.code, a.body)
}

// A file may take longer than the server's deadline for a whole request
// (-server.http-read-timeout) as long as its bytes keep coming.
func TestSlowFileOutlivesReadTimeout(t *testing.T) {
	f := newFixture(t, defaultConfig())
	mux := http.NewServeMux()
	f.h.Register(muxRouter{mux})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	f.srv = srv

	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	body := files[order[0]]
	pr, pw := io.Pipe()
	go func() {
		step := len(body)/8 + 1
		for i := 0; i < len(body); i += step {
			time.Sleep(100 * time.Millisecond) // 8 steps: well over the read timeout in all
			if _, err := pw.Write(body[i:min(i+step, len(body))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	a := f.do(t, http.MethodPost, "a", id.String()+"/files?path="+order[0], pr, int64(len(body)))
	require.Equal(t, http.StatusOK, a.code, a.body)
}

// A file sent again and cut short is gone from the bucket and from the
// upload's state: a resume sends it again instead of trusting the first
// copy, which the short one overwrote.
func TestShortBodyForgetsFile(t *testing.T) {
	f := newFixture(t, defaultConfig())
	id, meta, files, _ := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	require.Equal(t, http.StatusOK, f.file(t, "a", id, "index", files["index"]).code)
	require.Len(t, f.check(t, "a", id).Files, 1)

	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST %s%s/files?path=index HTTP/1.1\r\nHost: x\r\nX-Scope-OrgID: a\r\nContent-Length: %d\r\n\r\n%s",
		RoutePrefix, id, len(files["index"]), files["index"][:10])
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	ans, _ := io.ReadAll(conn) // the answer: the handler is done; the server then closes
	require.NoError(t, conn.Close())
	require.Contains(t, string(ans), "the body ended after 10 of")

	require.Empty(t, f.check(t, "a", id).Files)
	require.NotContains(t, objects(t, f.bkt, "a/"), "a/"+id.String()+"/index")
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonBadFile)))
}
