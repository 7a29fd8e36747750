package bucketindex

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/tenant"
)

// BlockRef names one block of a tenant and its time range: what a reader
// needs of an index Block.
type BlockRef struct {
	ID ulid.ULID
	// MinTime and MaxTime are the block's range in Unix ms, half-open
	// [MinTime, MaxTime) as in meta.json.
	MinTime, MaxTime int64
	// Source is who wrote the block; Ingester, for an ingester's block,
	// which ingester; CompactionLevel is meta.json's. A damaged ingester
	// copy may be skipped when other copies of its range are served.
	Source          block.Source
	Ingester        string
	CompactionLevel int
}

// Overlaps reports whether the block holds samples that may fall in
// [mint, maxt] (both inclusive).
func (b BlockRef) Overlaps(mint, maxt int64) bool { return b.MinTime <= maxt && b.MaxTime > mint }

// BlockLister says which blocks hold a tenant's data: IndexLister over a
// Loader in production, so that no query lists the bucket. The querier asks
// it which blocks a query needs; the store-gateway, which blocks it owns.
type BlockLister interface {
	// Blocks returns the tenant's complete blocks not marked for deletion
	// whose range overlaps [mint, maxt]; none (a tenant without blocks, or
	// without a bucket index yet) is not an error. It is goroutine-safe;
	// the caller owns the returned slice.
	Blocks(ctx context.Context, tenantID string, mint, maxt int64) ([]BlockRef, error)
}

// BucketLister is a BlockLister (and the store-gateway's tenant list) that
// lists the bucket on every call: for tests and single-process setups
// until a bucket index exists. It reads each block's meta.json once, and
// the deletion mark of each block not yet known to be marked on every call.
// It is goroutine-safe.
type BucketLister struct {
	bkt objstore.Bucket

	mu     sync.Mutex
	metas  map[string]map[ulid.ULID]BlockRef // by tenant: complete blocks
	marked map[string]map[ulid.ULID]bool     // by tenant: deletion-marked
}

// NewBucketLister returns a lister over bkt (the whole bucket, tenants at
// its top level).
func NewBucketLister(bkt objstore.Bucket) *BucketLister {
	return &BucketLister{bkt: bkt, metas: map[string]map[ulid.ULID]BlockRef{}, marked: map[string]map[ulid.ULID]bool{}}
}

// Tenants returns the tenants that have a directory in the bucket, sorted.
func (l *BucketLister) Tenants(ctx context.Context) ([]string, error) {
	var out []string
	err := l.bkt.Iter(ctx, "", func(name string) error {
		if id, ok := strings.CutSuffix(name, "/"); ok && tenant.Validate(id) == nil {
			out = append(out, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tenants: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// Blocks implements BlockLister.
func (l *BucketLister) Blocks(ctx context.Context, tenantID string, mint, maxt int64) ([]BlockRef, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	tb := objstore.NewPrefixedBucket(l.bkt, tenantID)
	var ids []ulid.ULID
	err := tb.Iter(ctx, "", func(name string) error {
		if id, ok := block.ParseDir(name); ok && strings.HasSuffix(name, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
	}
	slices.SortFunc(ids, ulid.ULID.Compare)
	l.mu.Lock()
	known, marked := l.metas[tenantID], l.marked[tenantID]
	if known == nil {
		known, marked = map[ulid.ULID]BlockRef{}, map[ulid.ULID]bool{}
		l.metas[tenantID], l.marked[tenantID] = known, marked
	}
	// Forget blocks deleted from the bucket.
	for id := range known {
		if _, ok := slices.BinarySearchFunc(ids, id, ulid.ULID.Compare); !ok {
			delete(known, id)
			delete(marked, id)
		}
	}
	l.mu.Unlock()
	var out []BlockRef
	for _, id := range ids {
		l.mu.Lock()
		ref, ok := known[id]
		isMarked := marked[id]
		l.mu.Unlock()
		if isMarked {
			continue
		}
		if !ok {
			m, err := block.ReadMeta(ctx, tb, id)
			if block.IsNotFound(err) {
				continue // partial: an upload in progress or failed
			}
			if err != nil {
				return nil, fmt.Errorf("reading meta of block %s of tenant %s: %w", id, tenantID, err)
			}
			ref = BlockRef{ID: id, MinTime: m.MinTime, MaxTime: m.MaxTime, Source: m.Strata.Source, Ingester: m.Strata.Ingester, CompactionLevel: m.Compaction.Level}
		}
		dm, err := block.ReadDeletionMark(ctx, tb, id)
		if err != nil {
			return nil, fmt.Errorf("reading deletion mark of block %s of tenant %s: %w", id, tenantID, err)
		}
		l.mu.Lock()
		known[id] = ref
		if dm != nil {
			marked[id] = true
		}
		l.mu.Unlock()
		if dm == nil && ref.Overlaps(mint, maxt) {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b BlockRef) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
	return out, nil
}
