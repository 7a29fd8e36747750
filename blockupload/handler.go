package blockupload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/tenant"
)

// Routes, under the block's ULID. Mimir's names, so that its tooling's
// habits carry over; check is a GET that changes nothing.
const (
	RoutePrefix = "/api/v1/upload/block/"
	routeStart  = "POST " + RoutePrefix + "{block}/start"
	routeFiles  = "POST " + RoutePrefix + "{block}/files"
	routeFinish = "POST " + RoutePrefix + "{block}/finish"
	routeCheck  = "GET " + RoutePrefix + "{block}/check"
)

// tenantResolver names the tenant of a request (tenant.Resolver).
type tenantResolver interface {
	FromHTTP(r *http.Request) (string, error)
}

// router mounts a handler at a method and path pattern (server.Server).
type router interface {
	Handle(pattern, route string, h http.Handler)
}

// Deps are what the handler needs from the process.
type Deps struct {
	Bucket  objstore.Bucket // the root of the blocks storage
	Tenants tenantResolver
	// Enabled reports whether tenant may upload blocks (its
	// compactor_block_upload_enabled); Retention is its
	// compactor_blocks_retention_period, 0 for forever.
	Enabled   func(tenant string) bool
	Retention func(tenant string) time.Duration
	// TempDir holds the one block being verified at finish.
	TempDir string
	Log     *slog.Logger
	Reg     prometheus.Registerer
	Now     func() time.Time
}

// Handler serves block uploads.
type Handler struct {
	cfg Config
	d   Deps
	m   *metrics
	// stateMu serialises the read-modify-write of upload states (in this
	// process; one client uploads one block's files one after another)
	// and guards active.
	stateMu sync.Mutex
	// active is what requests do to each upload now, by tenant and block:
	// in this process, like stateMu, and gone with it (a flag in the
	// bucket would outlive a crash and wedge the block).
	active map[activeKey]*activity
	// verifying admits one finish at a time: it bounds the temporary disk
	// to -compactor.block-upload-max-block-bytes. A finish that finds it
	// taken is answered 429 at once rather than queued: one tenant's
	// large block must not hold another's finish without a time limit.
	verifying chan struct{}
}

type activeKey struct {
	tenant string
	id     ulid.ULID
}

// activity is what requests in flight do to one upload.
type activity struct {
	// receiving holds the files being received, with the bytes each
	// reserved of -compactor.block-upload-max-block-bytes.
	receiving map[string]int64
	// finishing is set while finish verifies the block: its files must
	// not change under it.
	finishing bool
}

// busyRetryAfter is the Retry-After of a finish refused while another
// block is verified: verifying takes seconds to minutes.
const busyRetryAfter = 10 * time.Second

// New returns the handler; Register mounts it.
func New(cfg Config, d Deps) *Handler {
	return &Handler{cfg: cfg, d: d, m: newMetrics(d.Reg), active: map[activeKey]*activity{}, verifying: make(chan struct{}, 1)}
}

// activityOf returns req's upload's activity, creating it; under stateMu.
func (h *Handler) activityOf(req request) *activity {
	k := activeKey{req.tenant, req.id}
	a := h.active[k]
	if a == nil {
		a = &activity{receiving: map[string]int64{}}
		h.active[k] = a
	}
	return a
}

// idle forgets req's upload's activity when nothing is left of it; under
// stateMu.
func (h *Handler) idle(req request) {
	k := activeKey{req.tenant, req.id}
	if a := h.active[k]; a != nil && !a.finishing && len(a.receiving) == 0 {
		delete(h.active, k)
	}
}

// refuseFinishing answers a request that would change an upload being
// finished.
func refuseFinishing(id ulid.ULID) error {
	return refuse(ReasonInProgress, http.StatusConflict, "block %s is being finished (verified) by another request: its files cannot change now; wait for that finish's answer", id)
}

// Register mounts the routes on r.
func (h *Handler) Register(r router) {
	r.Handle(routeStart, "api_v1_upload_block_start", h.wrap(h.start))
	r.Handle(routeFiles, "api_v1_upload_block_files", h.wrap(h.files))
	r.Handle(routeFinish, "api_v1_upload_block_finish", h.wrap(h.finish))
	r.Handle(routeCheck, "api_v1_upload_block_check", h.wrap(h.check))
}

// request is one call's tenant, block and the tenant's part of the bucket.
type request struct {
	tenant string
	id     ulid.ULID
	tbkt   objstore.Bucket
}

// wrap resolves the tenant and the block, checks the tenant may upload,
// and writes fn's answer or error.
func (h *Handler) wrap(fn func(ctx context.Context, req request, w http.ResponseWriter, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := h.d.Tenants.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		answer, err := func() (any, error) {
			id, err := ulid.ParseStrict(r.PathValue("block"))
			if err != nil {
				return nil, refuse(ReasonBadMeta, http.StatusBadRequest, "block %q is not a ULID: %v", r.PathValue("block"), err)
			}
			if !h.d.Enabled(t) {
				return nil, refuse(ReasonDisabled, http.StatusForbidden, "block upload is disabled for tenant %q: the operator enables it with compactor_block_upload_enabled: true in the tenant's overrides", t)
			}
			return fn(r.Context(), request{tenant: t, id: id, tbkt: objstore.NewPrefixedBucket(h.d.Bucket, t)}, w, r)
		}()
		if err != nil {
			h.m.failed.WithLabelValues(reasonOf(err)).Inc()
			if re, ok := errors.AsType[*RefusedError](err); ok && re.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(re.RetryAfter/time.Second)))
			}
			code := httpStatus(err)
			if code >= 500 {
				h.d.Log.Error("block upload failed", "tenant", t, "path", r.URL.Path, "err", err)
			}
			http.Error(w, err.Error(), code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
}

// check answers what the bucket holds of the block: a client resuming an
// upload sends only what is missing.
func (h *Handler) check(ctx context.Context, req request, _ http.ResponseWriter, _ *http.Request) (any, error) {
	done, err := complete(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if done {
		return Status{State: StateComplete}, nil
	}
	st, err := readState(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return Status{State: StateAbsent}, nil
	}
	return Status{State: StateUploading, Files: st.Files}, nil
}

// start validates the block's meta.json and records the upload. Starting
// again with the same meta.json keeps the files received (a resume);
// with another, forgets them.
func (h *Handler) start(ctx context.Context, req request, _ http.ResponseWriter, r *http.Request) (any, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxMetaBytes+1))
	if err != nil {
		return nil, refuse(ReasonBadMeta, http.StatusBadRequest, "block %s: reading meta.json: %v", req.id, err)
	}
	if len(body) > maxMetaBytes {
		return nil, refuse(ReasonTooLarge, http.StatusRequestEntityTooLarge, "block %s: meta.json is over %d bytes", req.id, maxMetaBytes)
	}
	now := h.d.Now()
	m, err := validateMeta(body, req.id, req.tenant, h.d.Retention(req.tenant), h.cfg.FutureGrace, now)
	if err != nil {
		return nil, err
	}
	if err := h.refuseComplete(ctx, req); err != nil {
		return nil, err
	}
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	st, err := readState(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if st == nil || !sameBlock(&st.Meta, m) {
		st = &uploadState{StartedAt: now.UTC(), Meta: *m, Files: []FileState{}}
		if err := writeState(ctx, req.tbkt, req.id, st); err != nil {
			return nil, err
		}
		h.m.started.Inc()
		h.d.Log.Info("block upload started", "tenant", req.tenant, "block", req.id, "min_time", m.MinTime, "max_time", m.MaxTime)
	}
	return Status{State: StateUploading, Files: st.Files}, nil
}

func sameBlock(a, b *block.Meta) bool {
	return a.ULID == b.ULID && a.MinTime == b.MinTime && a.MaxTime == b.MaxTime && a.Stats == b.Stats && a.Compaction.Level == b.Compaction.Level
}

func (h *Handler) refuseComplete(ctx context.Context, req request) error {
	done, err := complete(ctx, req.tbkt, req.id)
	if err != nil {
		return err
	}
	if done {
		return refuse(ReasonExists, http.StatusConflict, "block %s is in the bucket already", req.id)
	}
	return nil
}

// files streams one file of the block (?path=index or chunks/NNNNNN, the
// body its bytes, Content-Length required) to the bucket, hashing it on
// the way; it is never held whole in memory.
func (h *Handler) files(ctx context.Context, req request, w http.ResponseWriter, r *http.Request) (any, error) {
	p := r.URL.Query().Get("path")
	if err := validatePath(req.id, p); err != nil {
		return nil, err
	}
	size := r.ContentLength
	switch {
	case size < 0:
		return nil, refuse(ReasonBadFile, http.StatusLengthRequired, "block %s: file %s: the request needs a Content-Length", req.id, p)
	case size > h.cfg.MaxFileBytes:
		return nil, refuse(ReasonTooLarge, http.StatusRequestEntityTooLarge, "block %s: file %s has %d bytes, over -compactor.block-upload-max-file-bytes (%d)", req.id, p, size, h.cfg.MaxFileBytes)
	}
	if err := h.refuseComplete(ctx, req); err != nil {
		return nil, err
	}
	if err := h.reserve(ctx, req, p, size); err != nil {
		return nil, err
	}
	defer func() {
		h.stateMu.Lock()
		defer h.stateMu.Unlock()
		delete(h.activityOf(req).receiving, p)
		h.idle(req)
	}()
	name := path.Join(req.id.String(), p)
	// A file takes as long as it takes (-server.http-read-timeout bounds a
	// whole request): the deadline moves with every read, so only a
	// client that stalls for bodyIdleTimeout is cut off.
	rc := http.NewResponseController(w)
	cr := &countingReader{r: io.LimitReader(r.Body, size), h: sha256.New(), size: size, extend: func() {
		_ = rc.SetReadDeadline(time.Now().Add(bodyIdleTimeout)) // ErrNotSupported: the server's deadline stays
	}}
	uerr := req.tbkt.Upload(ctx, name, cr)
	if cr.n != size {
		// The client went away or sent less than it announced: what
		// reached the bucket is not the file.
		dctx := context.WithoutCancel(ctx)
		_ = req.tbkt.Delete(dctx, name)
		h.forgetFile(dctx, req, p)
		return nil, refuse(ReasonBadFile, http.StatusBadRequest, "block %s: file %s: the body ended after %d of %d bytes", req.id, p, cr.n, size)
	}
	if uerr != nil {
		return nil, fmt.Errorf("block %s: storing %s: %w", req.id, p, uerr)
	}
	h.m.bytes.Add(float64(size))
	fs := FileState{Path: p, Size: size, SHA256: hex.EncodeToString(cr.h.Sum(nil))}
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	st, err := h.state(ctx, req)
	if err != nil {
		return nil, err
	}
	st.setFile(fs)
	if err := writeState(ctx, req.tbkt, req.id, st); err != nil {
		return nil, err
	}
	return fs, nil
}

// reserve admits file p of size bytes to req's upload: under stateMu, its
// bytes with the files received and those being received by other
// requests stay within -compactor.block-upload-max-block-bytes, no other
// request is receiving p, and no finish is verifying the block. The
// caller removes p from receiving when done.
func (h *Handler) reserve(ctx context.Context, req request, p string, size int64) error {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	a := h.activityOf(req)
	defer h.idle(req)
	if a.finishing {
		return refuseFinishing(req.id)
	}
	if _, ok := a.receiving[p]; ok {
		return refuse(ReasonInProgress, http.StatusConflict, "block %s: file %s is being received by another request; wait for its answer", req.id, p)
	}
	st, err := h.state(ctx, req)
	if err != nil {
		return err
	}
	old, _ := st.file(p)
	total := st.bytes() - old.Size + size
	for _, n := range a.receiving {
		total += n
	}
	if total > h.cfg.MaxBlockBytes {
		return refuse(ReasonTooLarge, http.StatusRequestEntityTooLarge, "block %s: its files would hold %d bytes, over -compactor.block-upload-max-block-bytes (%d)", req.id, total, h.cfg.MaxBlockBytes)
	}
	a.receiving[p] = size
	return nil
}

// forgetFile drops p from the upload's state after its object was deleted
// (a body cut short), so that a resume sends it again rather than trusting
// an earlier copy that is gone.
func (h *Handler) forgetFile(ctx context.Context, req request, p string) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	st, err := readState(ctx, req.tbkt, req.id)
	if err != nil || st == nil {
		return
	}
	if _, ok := st.file(p); !ok {
		return
	}
	st.Files = slices.DeleteFunc(st.Files, func(f FileState) bool { return f.Path == p })
	if err := writeState(ctx, req.tbkt, req.id, st); err != nil {
		h.d.Log.Warn("forgetting a file cut short; finish will refuse the upload", "tenant", req.tenant, "block", req.id, "file", p, "err", err)
	}
}

// state reads the block's upload state; an upload not started is refused.
func (h *Handler) state(ctx context.Context, req request) (*uploadState, error) {
	st, err := readState(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, refuse(ReasonNotStarted, http.StatusNotFound, "block %s: no upload started (POST %s%s/start first)", req.id, RoutePrefix, req.id)
	}
	return st, nil
}

// countingReader hashes and counts what the bucket reads. It tells the
// bucket the size announced (objstore.ObjectSizer): an S3 client that does
// not know it buffers a multipart upload's parts of hundreds of MB.
type countingReader struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	size   int64
	extend func() // before each read
}

// bodyIdleTimeout is how long a file's body may stall.
const bodyIdleTimeout = time.Minute

func (c *countingReader) ObjectSize() (int64, error) { return c.size, nil }

func (c *countingReader) Read(p []byte) (int, error) {
	c.extend()
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	return n, err
}

// finish verifies the uploaded block and makes it visible: meta.json is
// written last, then the block is added to the tenant's bucket index. A
// block that does not verify is deleted (nothing of it stays) and refused
// with what is wrong. Finishing a block already complete answers complete.
// While it verifies, files and another finish of the block are refused
// (409); while another block is verified, it is refused (429).
func (h *Handler) finish(ctx context.Context, req request, w http.ResponseWriter, _ *http.Request) (any, error) {
	done, err := complete(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if done {
		return Status{State: StateComplete}, nil
	}
	st, err := h.beginFinish(ctx, req)
	if err != nil {
		return nil, err
	}
	defer func() {
		<-h.verifying
		h.stateMu.Lock()
		defer h.stateMu.Unlock()
		h.activityOf(req).finishing = false
		h.idle(req)
	}()
	// Verifying a large block takes minutes, more than
	// -server.http-write-timeout; the client waits (and a client that goes
	// away cancels ctx).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	dir := filepath.Join(h.d.TempDir, req.tenant+"-"+req.id.String())
	defer func() { _ = os.RemoveAll(dir) }()
	err = download(ctx, req.tbkt, req.id, st, dir)
	var samples uint64
	if err == nil {
		samples, err = verifyBlock(ctx, dir, &st.Meta)
	}
	if err == nil {
		err = stillThere(ctx, req.tbkt, req.id, st)
	}
	if r := reasonOf(err); r == ReasonCorrupt || r == ReasonNotStarted {
		if derr := block.Delete(context.WithoutCancel(ctx), req.tbkt, req.id); derr != nil {
			h.d.Log.Warn("deleting a refused upload; the compactor deletes it later", "tenant", req.tenant, "block", req.id, "err", derr)
		}
		h.d.Log.Warn("uploaded block refused", "tenant", req.tenant, "block", req.id, "err", err)
	}
	if err != nil {
		return nil, err
	}

	m := st.Meta
	m.Strata = block.Ext{Tenant: req.tenant, Source: block.SourceBackfill, Files: st.blockFiles()}
	b, err := json.MarshalIndent(&m, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("encoding block meta: %w", err)
	}
	if err := req.tbkt.Upload(ctx, path.Join(req.id.String(), block.MetaFilename), bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("block %s: writing meta.json: %w", req.id, err)
	}
	// Visible from here: what follows is tidying, and the compactor's
	// next listing adds the block to the index if AddBlocks fails.
	now := h.d.Now()
	if err := req.tbkt.Delete(ctx, statePath(req.id)); err != nil {
		h.d.Log.Warn("deleting the upload state of a finished block", "tenant", req.tenant, "block", req.id, "err", err)
	}
	if _, err := bucketindex.AddBlocks(ctx, h.d.Bucket, req.tenant, []bucketindex.Block{bucketindex.BlockOf(&m, now)}, now); err != nil {
		h.d.Log.Warn("adding an uploaded block to the bucket index; the compactor's next run adds it", "tenant", req.tenant, "block", req.id, "err", err)
	}
	h.m.finished.Inc()
	h.m.samples.Add(float64(samples))
	h.d.Log.Info("block upload finished", "tenant", req.tenant, "block", req.id, "samples", samples, "bytes", st.bytes())
	return Status{State: StateComplete}, nil
}

// beginFinish takes the verification slot and marks req's upload
// finishing, under stateMu: no file is being received and none will be
// until the caller clears the mark and frees the slot. It writes the
// upload's state again, so that the block's newest object is recent and
// the compactor does not delete it as an abandoned partial block while it
// is verified (a backfill resumed long after its last file).
func (h *Handler) beginFinish(ctx context.Context, req request) (*uploadState, error) {
	h.stateMu.Lock()
	defer h.stateMu.Unlock()
	a := h.activityOf(req)
	defer h.idle(req)
	if a.finishing {
		return nil, refuseFinishing(req.id)
	}
	if len(a.receiving) > 0 {
		return nil, refuse(ReasonInProgress, http.StatusConflict, "block %s: %d of its files are still being received; finish after their answers", req.id, len(a.receiving))
	}
	st, err := h.state(ctx, req)
	if err != nil {
		return nil, err
	}
	if _, ok := st.file(block.IndexFilename); !ok {
		return nil, refuse(ReasonBadFile, http.StatusBadRequest, "block %s: no index was uploaded", req.id)
	}
	select {
	case h.verifying <- struct{}{}:
	default:
		e := refuse(ReasonBusy, http.StatusTooManyRequests, "block %s: the compactor is verifying another block (one at a time); try again in %s", req.id, busyRetryAfter).(*RefusedError)
		e.RetryAfter = busyRetryAfter
		return nil, e
	}
	if err := writeState(ctx, req.tbkt, req.id, st); err != nil {
		<-h.verifying
		return nil, err
	}
	a.finishing = true
	return st, nil
}

// stillThere checks, after verification, that every file of the upload
// and its state are still in the bucket: the compactor may have deleted
// the block as an abandoned partial upload meanwhile, and meta.json must
// not make what is left of it visible.
func stillThere(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID, st *uploadState) error {
	names := []string{statePath(id)}
	for _, f := range st.Files {
		names = append(names, path.Join(id.String(), f.Path))
	}
	for _, name := range names {
		ok, err := tbkt.Exists(ctx, name)
		if err != nil {
			return fmt.Errorf("block %s: checking %s after verification: %w", id, name, err)
		}
		if !ok {
			return refuse(ReasonNotStarted, http.StatusNotFound, "block %s: %s left the bucket while the block was verified (the compactor deletes an upload whose newest object is older than -compactor.partial-block-deletion-delay): run the backfill again", id, name)
		}
	}
	return nil
}
