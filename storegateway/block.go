package storegateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// blockKey names a block with its tenant: the same ULID under two tenants
// is two blocks, and one tenant's request never reaches another's entry.
type blockKey struct {
	tenant string
	id     ulid.ULID
}

// blockEntry is one block this store-gateway has seen a request for (or has
// local files of). Its mutex serialises loading, unloading and removal;
// refs counts the requests using the open index.
type blockEntry struct {
	key blockKey

	mu       sync.Mutex
	meta     *block.Meta // read at the first load, kept (immutable)
	segments []segment
	ir       *blockIndex // nil when not loaded
	refs     int
	lastUsed time.Time
	gone     bool // removed from StoreGateway.blocks: acquire looks again
}

// segment is one chunks file of a block.
type segment struct {
	name string // object name relative to the block
	size int64  // -1 when meta.json does not say
}

// loadedBlock is one request's use of a block: the index-header stays
// open until release.
type loadedBlock struct {
	key      blockKey
	meta     *block.Meta
	ir       *blockIndex
	segments []segment
	bkt      objstore.BucketReader // the tenant's
	e        *blockEntry
}

// notFoundError is a requested block that is not the tenant's.
type notFoundError struct{ key blockKey }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("block %s not found for tenant %s", e.key.id, e.key.tenant)
}

// acquire returns block id of tenantID with its index-header open, loading it on
// first use; the caller must release it.
func (g *StoreGateway) acquire(ctx context.Context, tenantID string, id ulid.ULID) (*loadedBlock, error) {
	key := blockKey{tenantID, id}
	for {
		g.mu.Lock()
		if g.closing {
			g.mu.Unlock()
			return nil, errStopping
		}
		e := g.blocks[key]
		if e == nil {
			e = &blockEntry{key: key}
			g.blocks[key] = e
		}
		g.mu.Unlock()

		e.mu.Lock()
		if e.gone {
			e.mu.Unlock()
			continue
		}
		if e.ir == nil {
			if err := g.load(ctx, e); err != nil {
				// Forget the entry unless it has local files to keep track
				// of, so that requests naming junk do not grow the map.
				if _, serr := os.Stat(g.blockDir(key)); serr != nil {
					e.gone = true
					g.mu.Lock()
					if g.blocks[key] == e {
						delete(g.blocks, key)
					}
					g.mu.Unlock()
				}
				e.mu.Unlock()
				return nil, err
			}
		}
		e.refs++
		e.lastUsed = g.now()
		lb := &loadedBlock{key: key, meta: e.meta, ir: e.ir, segments: e.segments, bkt: g.tenantBucket(tenantID), e: e}
		e.mu.Unlock()
		return lb, nil
	}
}

func (g *StoreGateway) release(lb *loadedBlock) {
	e := lb.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refs--
	e.lastUsed = g.now()
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	if closing && e.refs == 0 && e.ir != nil {
		g.unloadLocked(e)
	}
}

func (g *StoreGateway) tenantBucket(tenantID string) objstore.Bucket {
	return objstore.NewPrefixedBucket(g.deps.Bucket, tenantID)
}

func (g *StoreGateway) tenantDir(tenantID string) string {
	return filepath.Join(g.cfg.DataDir, tenantID)
}

func (g *StoreGateway) blockDir(k blockKey) string {
	return filepath.Join(g.cfg.DataDir, k.tenant, k.id.String())
}

// load opens e's index-header, reading meta.json and building the
// index-header first when it is missing or damaged. e.mu is held.
func (g *StoreGateway) load(ctx context.Context, e *blockEntry) error {
	err := g.loadIndex(ctx, e)
	if err != nil {
		g.m.blockLoadFailures.Inc()
		var nf *notFoundError
		if errors.As(err, &nf) {
			return err
		}
		return fmt.Errorf("loading block %s of tenant %s: %w", e.key.id, e.key.tenant, err)
	}
	g.m.blockLoads.Inc()
	g.m.blocksLoaded.Inc()
	return nil
}

func (g *StoreGateway) loadIndex(ctx context.Context, e *blockEntry) error {
	tb := g.tenantBucket(e.key.tenant)
	if e.meta == nil {
		m, err := block.ReadMeta(ctx, tb, e.key.id)
		if block.IsNotFound(err) {
			return &notFoundError{e.key}
		}
		if err != nil {
			return err
		}
		switch {
		case m.ULID != e.key.id:
			return fmt.Errorf("meta.json names block %s", m.ULID)
		case m.Strata.Tenant != "" && m.Strata.Tenant != e.key.tenant:
			// A block copied under another tenant's prefix: refuse it
			// rather than serve one tenant's data to another.
			return &badInputError{fmt.Sprintf("block %s under tenant %s belongs to tenant %q by its meta.json", e.key.id, e.key.tenant, m.Strata.Tenant)}
		}
		e.meta, e.segments = m, segmentsOf(m)
	}
	dir := g.blockDir(e.key)
	// The whole index an older version downloaded: no longer read.
	_ = os.Remove(filepath.Join(dir, block.IndexFilename))
	file := filepath.Join(dir, headerFilename)
	name := path.Join(e.key.id.String(), block.IndexFilename)
	h, err := openHeader(file)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			g.log.Warn("index-header damaged; building it again", "tenant", e.key.tenant, "block", e.key.id, "err", err)
		}
		if err := g.buildHeader(ctx, tb, e, file); err != nil {
			return err
		}
		if h, err = openHeader(file); err != nil {
			// Just built from sections whose checksums held: what they
			// hold is malformed. A later load builds it again.
			g.removeHeader(file)
			return &dataLossError{fmt.Errorf("opening the index-header built from the index: %w", err)}
		}
	}
	e.ir = newBlockIndex(h, tb, name, g.m, e.key, g.seriesEntries)
	return nil
}

// buildHeader builds e's index-header into file from range reads of the
// block's index.
func (g *StoreGateway) buildHeader(ctx context.Context, tb objstore.BucketReader, e *blockEntry, file string) error {
	name := path.Join(e.key.id.String(), block.IndexFilename)
	size := int64(-1)
	for _, f := range e.meta.Strata.Files {
		if f.Path == block.IndexFilename {
			size = f.Size
		}
	}
	if size < 0 {
		attrs, err := tb.Attributes(ctx, name)
		if err != nil {
			return fmt.Errorf("building index-header: %w", err)
		}
		size = attrs.Size
	}
	g.removeHeader(file)
	read := func(ctx context.Context, what string, off, length int64) (io.ReadCloser, error) {
		return readIndexRange(ctx, tb, name, g.m, what, off, length)
	}
	n, err := buildHeader(ctx, read, size, file)
	if err != nil {
		return fmt.Errorf("building index-header: %w", err)
	}
	g.m.headerBuilds.Inc()
	g.m.headerBytes.Add(float64(n))
	return nil
}

// removeHeader deletes an index-header file, keeping the bytes gauge true.
func (g *StoreGateway) removeHeader(file string) {
	if st, err := os.Stat(file); err == nil && os.Remove(file) == nil {
		g.m.headerBytes.Sub(float64(st.Size()))
	}
}

// segmentsOf lists a block's chunk files in order: segment i of a chunk
// reference is the i-th file.
func segmentsOf(m *block.Meta) []segment {
	var out []segment
	for _, f := range m.Strata.Files {
		if strings.HasPrefix(f.Path, block.ChunksDirname+"/") {
			out = append(out, segment{name: f.Path, size: f.Size})
		}
	}
	slices.SortFunc(out, func(a, b segment) int { return strings.Compare(a.name, b.name) })
	return out
}

// segmentFile returns the object name (relative to the block) and size of
// chunk segment i; without a file list in meta.json, Prometheus' naming
// with an unknown size.
func (lb *loadedBlock) segmentFile(i int) (string, int64, error) {
	if len(lb.segments) == 0 {
		return fmt.Sprintf("%s/%06d", block.ChunksDirname, i+1), -1, nil
	}
	if i >= len(lb.segments) {
		return "", 0, fmt.Errorf("chunk segment %d of block %s: meta.json lists %d", i, lb.key.id, len(lb.segments))
	}
	return lb.segments[i].name, lb.segments[i].size, nil
}

// unloadLocked closes e's index-header; e.mu is held and no request uses it.
func (g *StoreGateway) unloadLocked(e *blockEntry) {
	if err := e.ir.Close(); err != nil {
		g.log.Warn("closing block index-header", "tenant", e.key.tenant, "block", e.key.id, "err", err)
	}
	e.ir = nil
	g.m.blocksLoaded.Dec()
	g.m.blockUnloads.Inc()
}

// removeIfIdle deletes the local files of block key unless its
// index-header is open, and forgets its entry.
func (g *StoreGateway) removeIfIdle(key blockKey) (bool, error) {
	g.mu.Lock()
	e := g.blocks[key]
	if e == nil {
		e = &blockEntry{key: key}
		g.blocks[key] = e
	}
	g.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.ir != nil || e.refs > 0 {
		return false, nil
	}
	e.gone = true
	g.mu.Lock()
	if g.blocks[key] == e {
		delete(g.blocks, key)
	}
	g.mu.Unlock()
	g.removeHeader(filepath.Join(g.blockDir(key), headerFilename))
	if err := os.RemoveAll(g.blockDir(key)); err != nil {
		return false, fmt.Errorf("removing local files of block %s of tenant %s: %w", key.id, key.tenant, err)
	}
	return true, nil
}
