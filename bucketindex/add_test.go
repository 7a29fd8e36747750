package bucketindex

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// AddBlocks creates a missing index, adds only what is missing, keeps
// everything else (marks, UpdatedAt) and writes nothing when it has
// nothing to add; a corrupt index is left to the compactor.
func TestAddBlocks(t *testing.T) {
	ctx := context.Background()
	const h = int64(time.Hour / time.Millisecond)
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1_800_000_000, 0)
	b1 := uploadBlock(t, bkt, "t", 0)
	b2 := uploadBlock(t, bkt, "t", 2*h)

	n, err := AddBlocks(ctx, bkt, "t", []Block{BlockOf(b2, now)}, now)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ix, err := ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b2.ULID}, blockIDs(ix))
	require.Equal(t, now.Unix(), ix.UpdatedAt, "a new index counts from its creation")
	require.Equal(t, block.SourceIngester, ix.Blocks[0].Source)
	require.Equal(t, "ing-1", ix.Blocks[0].Ingester)
	require.Positive(t, ix.Blocks[0].SizeBytes)

	// The compactor's index: b1 marked for deletion, updated an hour ago.
	compacted := &Index{Version: Version, UpdatedAt: now.Add(-time.Hour).Unix(),
		Blocks:        []Block{BlockOf(b1, now)},
		DeletionMarks: []DeletionMark{{ID: b1.ULID, DeletionTime: now.Unix()}}}
	require.NoError(t, WriteIndex(ctx, bkt, "t", compacted))
	n, err = AddBlocks(ctx, bkt, "t", []Block{BlockOf(b2, now), BlockOf(b1, now)}, now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n, "b1 is there already")
	ix, err = ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1.ULID, b2.ULID}, blockIDs(ix))
	require.Equal(t, compacted.UpdatedAt, ix.UpdatedAt, "only the compactor's listing moves UpdatedAt")
	require.Equal(t, compacted.DeletionMarks, ix.DeletionMarks)

	// Nothing to add: no write (the index object stays as it was).
	before, err := bkt.Attributes(ctx, "t/"+IndexFilename)
	require.NoError(t, err)
	n, err = AddBlocks(ctx, bkt, "t", []Block{BlockOf(b2, now)}, now)
	require.NoError(t, err)
	require.Zero(t, n)
	after, err := bkt.Attributes(ctx, "t/"+IndexFilename)
	require.NoError(t, err)
	require.Equal(t, before, after)

	put(t, bkt, "t/"+IndexFilename, "not gzip")
	_, err = AddBlocks(ctx, bkt, "t", []Block{BlockOf(b2, now)}, now)
	require.ErrorIs(t, err, ErrIndexCorrupted)
}

// The compactor and a shipper write the index at the same time: the
// shipper adds a block after the compactor's listing, the compactor then
// writes what it listed. KeepAdded keeps the shipper's block (and not one
// the compactor deleted meanwhile), and a shipper's next AddBlocks after a
// compactor write that still lost its block puts it back.
func TestConcurrentIndexWritersKeepBlocks(t *testing.T) {
	ctx := context.Background()
	const h = int64(time.Hour / time.Millisecond)
	bkt := objstore.NewInMemBucket()
	clk := newClock(time.Unix(1_800_000_000, 0))
	u := NewUpdater(bkt, slog.New(slog.DiscardHandler), clk.Now)
	b1 := uploadBlock(t, bkt, "t", 0)
	gone := uploadBlock(t, bkt, "t", 2*h)
	ix, _, err := u.Update(ctx, "t")
	require.NoError(t, err)
	require.NoError(t, WriteIndex(ctx, bkt, "t", ix))

	// The compactor lists...
	listed, _, err := u.Update(ctx, "t")
	require.NoError(t, err)
	// ...a shipper uploads b3 and adds it...
	b3 := uploadBlock(t, bkt, "t", 4*h)
	n, err := AddBlocks(ctx, bkt, "t", []Block{BlockOf(b3, clk.Now())}, clk.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	// ...the compactor deletes a block it listed (the index still has it)...
	require.NoError(t, block.Delete(ctx, objstore.NewPrefixedBucket(bkt, "t"), gone.ULID))
	listed.Blocks = listed.Blocks[:1] // what its second listing would say
	// ...and writes: b3 is kept, the deleted block is not brought back.
	kept, err := u.KeepAdded(ctx, "t", listed)
	require.NoError(t, err)
	require.Equal(t, 1, kept)
	require.NoError(t, WriteIndex(ctx, bkt, "t", listed))
	got, err := ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1.ULID, b3.ULID}, blockIDs(got))

	// Without KeepAdded (a write that raced past it) the block is lost
	// until the shipper checks again: its next AddBlocks restores it.
	require.NoError(t, WriteIndex(ctx, bkt, "t", &Index{Version: Version, UpdatedAt: clk.Now().Unix(), Blocks: []Block{BlockOf(b1, clk.Now())}}))
	n, err = AddBlocks(ctx, bkt, "t", []Block{BlockOf(b3, clk.Now())}, clk.Now())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = ReadIndex(ctx, bkt, "t")
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b1.ULID, b3.ULID}, blockIDs(got))
}

// A Loader shows blocks added by its own process as soon as it is told
// (Refresh), without waiting for its reload; a tenant it does not hold
// stays unloaded.
func TestLoaderRefreshAfterAdd(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1_800_000_000, 0)
	l := NewLoader(testLoaderConfig(), bkt, slog.New(slog.DiscardHandler), nil, func() time.Time { return now })
	blocks, err := l.Blocks(ctx, "t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Empty(t, blocks)

	b := uploadBlock(t, bkt, "t", 0)
	_, err = AddBlocks(ctx, bkt, "t", []Block{BlockOf(b, now)}, now)
	require.NoError(t, err)
	blocks, err = l.Blocks(ctx, "t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Empty(t, blocks, "the cached index until a reload")
	l.Refresh(ctx, "t")
	blocks, err = l.Blocks(ctx, "t", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, blocks, 1)
	require.Equal(t, b.ULID, blocks[0].ID)

	l.Refresh(ctx, "other")
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotContains(t, l.tenants, "other")
}
