package blockupload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
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
	// process; one client uploads one block's files one after another).
	stateMu sync.Mutex
	// verifying admits one finish at a time: it bounds the temporary disk
	// to -compactor.block-upload-max-block-bytes.
	verifying chan struct{}
}

// New returns the handler; Register mounts it.
func New(cfg Config, d Deps) *Handler {
	return &Handler{cfg: cfg, d: d, m: newMetrics(d.Reg), verifying: make(chan struct{}, 1)}
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
	st, err := h.state(ctx, req)
	if err != nil {
		return nil, err
	}
	old, _ := st.file(p)
	if total := st.bytes() - old.Size + size; total > h.cfg.MaxBlockBytes {
		return nil, refuse(ReasonTooLarge, http.StatusRequestEntityTooLarge, "block %s: its files would hold %d bytes, over -compactor.block-upload-max-block-bytes (%d)", req.id, total, h.cfg.MaxBlockBytes)
	}
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
	if st, err = h.state(ctx, req); err != nil {
		return nil, err
	}
	st.setFile(fs)
	if err := writeState(ctx, req.tbkt, req.id, st); err != nil {
		return nil, err
	}
	return fs, nil
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
func (h *Handler) finish(ctx context.Context, req request, w http.ResponseWriter, _ *http.Request) (any, error) {
	done, err := complete(ctx, req.tbkt, req.id)
	if err != nil {
		return nil, err
	}
	if done {
		return Status{State: StateComplete}, nil
	}
	st, err := h.state(ctx, req)
	if err != nil {
		return nil, err
	}
	if _, ok := st.file(block.IndexFilename); !ok {
		return nil, refuse(ReasonBadFile, http.StatusBadRequest, "block %s: no index was uploaded", req.id)
	}
	// Verifying a large block takes minutes, more than
	// -server.http-write-timeout; the client waits (and a client that goes
	// away cancels ctx).
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	select {
	case h.verifying <- struct{}{}:
		defer func() { <-h.verifying }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	dir := filepath.Join(h.d.TempDir, req.tenant+"-"+req.id.String())
	defer func() { _ = os.RemoveAll(dir) }()
	err = download(ctx, req.tbkt, req.id, st, dir)
	var samples uint64
	if err == nil {
		samples, err = verifyBlock(ctx, dir, &st.Meta)
	}
	if reasonOf(err) == ReasonCorrupt {
		if derr := block.Delete(context.WithoutCancel(ctx), req.tbkt, req.id); derr != nil {
			h.d.Log.Warn("deleting a corrupt upload; the compactor deletes it later", "tenant", req.tenant, "block", req.id, "err", derr)
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
