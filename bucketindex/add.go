package bucketindex

import (
	"context"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// Adding blocks as they are shipped. The compactor rebuilds a tenant's
// index from a full listing every -compactor.cleanup-interval; a block an
// ingester ships in between would be in the bucket but in no index until
// then, and invisible to queries once the ingester no longer has it (its
// disk lost). So the shipper adds each block it uploads to the index at
// once (AddBlocks), and the compactor, just before writing the index it
// built, keeps the blocks added since its listing (Updater.KeepAdded).
//
// Object storage offers no conditional write here, so two writers can
// still interleave read and write; what each side does makes that safe:
//
//   - AddBlocks only adds, and leaves UpdatedAt alone (it says when the
//     compactor last listed the bucket; readers judge staleness by it).
//     A shipper asks again at its next round whether its blocks are in
//     the index, and adds them again if a concurrent writer (another
//     replica's shipper, the compactor) dropped them.
//   - An AddBlocks that overwrites a compactor's fresh index puts back the
//     compactor's previous one plus the new blocks: every block in it
//     still exists or carries a deletion mark older than any reader's
//     grace (blocks are deleted -compactor.deletion-delay after their
//     mark), so readers read no less than before, and the compactor's
//     next run writes its work again.

// AddBlocks adds blocks to tenant's index in bkt (the bucket root),
// creating the index when there is none, and writes it unless every block
// is in it already. It returns how many blocks it added. A corrupt index
// is an error: the compactor replaces it from a listing.
func AddBlocks(ctx context.Context, bkt objstore.Bucket, tenant string, blocks []Block, now time.Time) (int, error) {
	// Exists first: a tenant's first blocks find no index, and a
	// not-found Get counts as a failed operation in the bucket's metrics.
	name := tenant + "/" + IndexFilename
	exists, err := bkt.Exists(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("adding blocks to the bucket index of tenant %s: checking %s: %w", tenant, name, err)
	}
	ix, err := &Index{}, fmt.Errorf("%s: %w", name, ErrIndexNotFound)
	if exists {
		ix, err = ReadIndex(ctx, bkt, tenant)
	}
	switch {
	case errors.Is(err, ErrIndexNotFound):
		// The tenant's first blocks: UpdatedAt counts from now, so an
		// index the compactor never lists turns stale as any other.
		ix = &Index{Version: Version, UpdatedAt: now.Unix(), Blocks: []Block{}, DeletionMarks: []DeletionMark{}}
	case err != nil:
		return 0, fmt.Errorf("adding blocks to the bucket index of tenant %s: %w", tenant, err)
	}
	have := make(map[ulid.ULID]bool, len(ix.Blocks))
	for _, b := range ix.Blocks {
		have[b.ID] = true
	}
	var added int
	for _, b := range blocks {
		if !have[b.ID] {
			have[b.ID] = true
			ix.Blocks = append(ix.Blocks, b)
			added++
		}
	}
	if added == 0 {
		return 0, nil
	}
	ix.sort()
	if err := WriteIndex(ctx, bkt, tenant, ix); err != nil {
		return 0, fmt.Errorf("adding blocks to the bucket index of tenant %s: %w", tenant, err)
	}
	return added, nil
}

// KeepAdded adds to ix, an index Update built and not yet published, the
// blocks that the index now in the bucket lists, ix lacks, and whose
// meta.json exists: blocks a shipper added (AddBlocks) after Update's
// listing. A block deleted since (meta.json goes first) is not kept. It
// returns how many it kept; a missing or corrupt index in the bucket has
// none to keep. Call it right before writing ix.
func (u *Updater) KeepAdded(ctx context.Context, tenant string, ix *Index) (int, error) {
	cur, err := ReadIndex(ctx, u.bkt, tenant)
	switch {
	case errors.Is(err, ErrIndexNotFound), errors.Is(err, ErrIndexCorrupted):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading blocks added to the bucket index of tenant %s: %w", tenant, err)
	}
	have := make(map[ulid.ULID]bool, len(ix.Blocks))
	for _, b := range ix.Blocks {
		have[b.ID] = true
	}
	var kept int
	for _, b := range cur.Blocks {
		if have[b.ID] {
			continue
		}
		name := path.Join(tenant, b.ID.String(), block.MetaFilename)
		ok, err := u.bkt.Exists(ctx, name)
		if err != nil {
			return 0, fmt.Errorf("checking %s: %w", name, err)
		}
		if ok {
			ix.Blocks = append(ix.Blocks, b)
			kept++
		}
	}
	if kept > 0 {
		ix.sort()
	}
	return kept, nil
}
