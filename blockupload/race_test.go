package blockupload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// hookBucket calls onUpload before an upload and onGet after a get; an
// error from them is the operation's.
type hookBucket struct {
	objstore.Bucket
	onUpload func(name string) error
	onGet    func(name string) error
}

func (b hookBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if b.onUpload != nil {
		if err := b.onUpload(name); err != nil {
			return err
		}
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b hookBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := b.Bucket.Get(ctx, name)
	if err == nil && b.onGet != nil {
		if herr := b.onGet(name); herr != nil {
			r.Close()
			return nil, herr
		}
	}
	return r, err
}

// gate holds the requests that reach it until opened; entered tells of
// each arrival.
type gate struct {
	entered chan string
	open    chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{entered: make(chan string, 16), open: make(chan struct{})}
	t.Cleanup(g.release) // before the server closes: nothing stays held
	return g
}

func (g *gate) wait(name string) error {
	g.entered <- name
	<-g.open
	return nil
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// async runs a request and delivers its answer.
func async(fn func() answer) <-chan answer {
	ch := make(chan answer, 1)
	go func() { ch <- fn() }()
	return ch
}

// Files received in parallel count against -compactor.block-upload-max-block-bytes
// together: the second that would pass it is refused before it reaches
// the bucket, and the same file twice at once is refused.
func TestParallelFilesKeepBlockLimit(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxFileBytes, cfg.MaxBlockBytes = 100, 150
	f := newFixture(t, cfg)
	g := newGate(t)
	f.h.d.Bucket = hookBucket{Bucket: f.bkt, onUpload: func(name string) error {
		if strings.Contains(name, "/chunks/") {
			return g.wait(name)
		}
		return nil
	}}
	id, meta, _, _ := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	body := bytes.Repeat([]byte{1}, 100)

	first := async(func() answer { return f.file(t, "a", id, "chunks/000001", body) })
	require.Equal(t, "a/"+id.String()+"/chunks/000001", <-g.entered)

	second := async(func() answer { return f.file(t, "a", id, "chunks/000002", body) })
	select {
	case a := <-second:
		require.Equal(t, http.StatusRequestEntityTooLarge, a.code, a.body)
		require.Contains(t, a.body, "its files would hold 200 bytes, over -compactor.block-upload-max-block-bytes (150)")
	case name := <-g.entered:
		t.Errorf("%s reached the bucket although the block's files would pass the limit", name)
	}
	again := async(func() answer { return f.file(t, "a", id, "chunks/000001", body) })
	select {
	case a := <-again:
		require.Equal(t, http.StatusConflict, a.code, a.body)
		require.Contains(t, a.body, "file chunks/000001 is being received by another request")
		require.Contains(t, a.body, ReasonInProgress)
	case name := <-g.entered:
		t.Errorf("%s reached the bucket twice at once", name)
	}

	g.release()
	a := <-first
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Len(t, f.check(t, "a", id).Files, 1)
	// The reservation went with the request: a file that fits is taken.
	require.Equal(t, http.StatusOK, f.file(t, "a", id, "chunks/000002", body[:50]).code)
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonTooLarge)))
}

// While finish verifies a block, its files cannot change (a file replaced
// after it was verified would be made visible unverified) and a second
// finish is refused; once finish failed, the upload goes on.
func TestFinishingBlocksChanges(t *testing.T) {
	f := newFixture(t, defaultConfig())
	g := newGate(t)
	failGet := true
	f.h.d.Bucket = hookBucket{Bucket: f.bkt, onGet: func(name string) error {
		if !strings.HasSuffix(name, "/"+block.IndexFilename) {
			return nil
		}
		if failGet {
			failGet = false
			return errors.New("the bucket is down")
		}
		return g.wait(name)
	}}
	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	for _, p := range order {
		require.Equal(t, http.StatusOK, f.file(t, "a", id, p, files[p]).code)
	}

	// A failed finish leaves the upload open to files and finish.
	a := f.finish(t, "a", id)
	require.Equal(t, http.StatusInternalServerError, a.code, a.body)
	require.Equal(t, http.StatusOK, f.file(t, "a", id, "index", files["index"]).code)

	done := async(func() answer { return f.finish(t, "a", id) })
	<-g.entered
	a = f.file(t, "a", id, "index", files["index"])
	require.Equal(t, http.StatusConflict, a.code, a.body)
	require.Contains(t, a.body, "block "+id.String()+" is being finished (verified) by another request")
	require.Contains(t, a.body, ReasonInProgress)
	a = f.finish(t, "a", id)
	require.Equal(t, http.StatusConflict, a.code, a.body)
	require.Contains(t, a.body, "is being finished")

	g.release()
	a = <-done
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.True(t, visible(t, f.bkt, "a", id))
	require.Equal(t, 2.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonInProgress)))
	require.Empty(t, f.h.active, "nothing of the upload stays in memory")
}

// One block is verified at a time; a finish that finds another tenant's
// block being verified is answered 429 with Retry-After at once instead
// of waiting without a limit, and succeeds when tried again after.
func TestFinishBusyAnswers429(t *testing.T) {
	f := newFixture(t, defaultConfig())
	g := newGate(t)
	f.h.d.Bucket = hookBucket{Bucket: f.bkt, onGet: func(name string) error {
		if strings.HasPrefix(name, "a/") && strings.HasSuffix(name, "/"+block.IndexFilename) {
			return g.wait(name)
		}
		return nil
	}}
	upload := func(tenantID string) ulid.ULID {
		id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
		require.Equal(t, http.StatusOK, f.start(t, tenantID, id, meta).code)
		for _, p := range order {
			require.Equal(t, http.StatusOK, f.file(t, tenantID, id, p, files[p]).code)
		}
		return id
	}
	idA, idB := upload("a"), upload("b")

	doneA := async(func() answer { return f.finish(t, "a", idA) })
	<-g.entered
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+RoutePrefix+idB.String()+"/finish", nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", "b")
	type result struct {
		resp *http.Response
		body string
	}
	doneB := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			doneB <- result{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		doneB <- result{resp, string(b)}
	}()
	select {
	case r := <-doneB:
		require.NotNil(t, r.resp)
		require.Equal(t, http.StatusTooManyRequests, r.resp.StatusCode, r.body)
		require.Equal(t, "10", r.resp.Header.Get("Retry-After"))
		require.Contains(t, r.body, "the compactor is verifying another block")
		require.Contains(t, r.body, ReasonBusy)
	case <-time.After(time.Minute): // a guard: the answer is immediate
		t.Fatal("tenant b's finish waited for tenant a's verification")
	}

	g.release()
	require.Equal(t, http.StatusOK, (<-doneA).code)
	a := f.finish(t, "b", idB)
	require.Equal(t, http.StatusOK, a.code, a.body)
	require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonBusy)))
}

// A backfill resumed long after its last file: finish makes the block's
// newest object recent before it verifies, so that the compactor does not
// take it for an abandoned partial block; and if the compactor deleted it
// all the same, finish refuses rather than make what is left visible.
func TestFinishRacesPartialBlockCleanup(t *testing.T) {
	f := newFixture(t, defaultConfig())
	mem := f.bkt.(*objstore.InMemBucket)
	id, meta, files, order := blockFiles(t, makeBlock(t, blockStart))
	require.Equal(t, http.StatusOK, f.start(t, "a", id, meta).code)
	for _, p := range order {
		require.Equal(t, http.StatusOK, f.file(t, "a", id, p, files[p]).code)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range objects(t, f.bkt, "a/") {
		require.NoError(t, mem.ChangeLastModified(name, old))
	}
	var newest time.Time
	f.h.d.Bucket = hookBucket{Bucket: f.bkt, onGet: func(name string) error {
		if !strings.HasSuffix(name, "/"+block.IndexFilename) {
			return nil
		}
		// The compactor's cleanup, as the last file is downloaded.
		ctx := context.Background()
		return f.bkt.Iter(ctx, "a/", func(n string) error {
			attrs, err := f.bkt.Attributes(ctx, n)
			if err != nil {
				return err
			}
			if attrs.LastModified.After(newest) {
				newest = attrs.LastModified
			}
			return f.bkt.Delete(ctx, n)
		}, objstore.WithRecursiveIter())
	}}
	a := f.finish(t, "a", id)
	require.True(t, newest.After(old), "the block's newest object is from before finish: %s", newest)
	require.Equal(t, http.StatusNotFound, a.code, a.body)
	require.Contains(t, a.body, "left the bucket while the block was verified")
	require.Contains(t, a.body, ReasonNotStarted)
	require.False(t, visible(t, f.bkt, "a", id))
	require.Empty(t, objects(t, f.bkt, ""), "nothing of the block stays")
}
