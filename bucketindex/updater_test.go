package bucketindex

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

func blockIDs(ix *Index) []ulid.ULID {
	var out []ulid.ULID
	for _, b := range ix.Blocks {
		out = append(out, b.ID)
	}
	return out
}

func TestUpdater(t *testing.T) {
	ctx := context.Background()
	const h = int64(time.Hour / time.Millisecond)
	for name, newBkt := range map[string]func(t *testing.T) objstore.Bucket{
		"inmem":      func(*testing.T) objstore.Bucket { return objstore.NewInMemBucket() },
		"filesystem": func(t *testing.T) objstore.Bucket { return fsBucket(t) },
	} {
		t.Run(name, func(t *testing.T) {
			bkt := newBkt(t)
			tbkt := objstore.NewPrefixedBucket(bkt, "t1")
			clk := newClock(time.Now())
			u := NewUpdater(bkt, slog.New(slog.DiscardHandler), clk.Now)

			b1 := uploadBlock(t, bkt, "t1", 0)
			b2 := uploadBlock(t, bkt, "t1", 2*h)
			b3 := uploadBlock(t, bkt, "t1", 4*h)
			partial := uploadBlock(t, bkt, "t1", 6*h)
			del(t, bkt, objName("t1", partial.ULID, block.MetaFilename))
			corrupt := testID(9)
			put(t, bkt, objName("t1", corrupt, "index"), "x")
			put(t, bkt, objName("t1", corrupt, block.MetaFilename), "{not json")
			uploadBlock(t, bkt, "t2", 0) // another tenant: not listed
			put(t, bkt, "t1/not-a-block/meta.json", "{}")
			require.NoError(t, block.MarkForDeletion(ctx, tbkt, b2.ULID, "test", clk.Now().Add(-time.Hour)))
			require.NoError(t, block.MarkNoCompact(ctx, tbkt, b3.ULID, "test", clk.Now()))

			ix, rep, err := u.Update(ctx, "t1")
			require.NoError(t, err)
			require.Equal(t, []ulid.ULID{b1.ULID, b2.ULID, b3.ULID}, blockIDs(ix))
			require.Equal(t, clk.Now().Unix(), ix.UpdatedAt)
			require.Equal(t, 3, rep.MetasRead)
			require.Equal(t, []DeletionMark{{ID: b2.ULID, DeletionTime: clk.Now().Add(-time.Hour).Unix()}}, ix.DeletionMarks)
			require.Equal(t, map[ulid.ULID]struct{}{b3.ULID: {}}, rep.NoCompact)
			require.Len(t, rep.Partial, 1)
			require.Equal(t, partial.ULID, rep.Partial[0].ID)
			require.False(t, rep.Partial[0].DeletionMarked)
			require.Less(t, rep.Partial[0].Age(clk.Now()), time.Hour, "a partial block's age is its newest object's")
			require.Len(t, rep.Corrupt, 1)
			require.Equal(t, corrupt, rep.Corrupt[0].ID)

			got := ix.Blocks[0]
			var size int64
			for _, f := range b1.Strata.Files {
				size += f.Size
			}
			require.Equal(t, Block{
				ID: b1.ULID, MinTime: b1.MinTime, MaxTime: b1.MaxTime, Source: block.SourceIngester,
				CompactionLevel: 1, Ingester: "ing-1", UploadedAt: got.UploadedAt, SizeBytes: size,
			}, got)
			require.InDelta(t, time.Now().Unix(), got.UploadedAt, 60, "uploaded_at is meta.json's write time")

			// The next update reuses the entries: only the new block's
			// meta.json is read, and a changed mark keeps its first time.
			require.NoError(t, WriteIndex(ctx, bkt, "t1", ix))
			b5 := uploadBlock(t, bkt, "t1", 8*h)
			put(t, bkt, objName("t1", b2.ULID, block.DeletionMarkFilename), `{"deletion_time": 1}`)
			clk.Add(time.Minute)
			ix2, rep2, err := u.Update(ctx, "t1")
			require.NoError(t, err)
			require.Equal(t, 1, rep2.MetasRead)
			require.Equal(t, []ulid.ULID{b1.ULID, b2.ULID, b3.ULID, b5.ULID}, blockIDs(ix2))
			require.Equal(t, ix.DeletionMarks, ix2.DeletionMarks)
			require.Equal(t, ix.Blocks[0], ix2.Blocks[0])

			// A deleted block leaves the index with its mark; a block
			// half deleted (meta.json gone, mark left) is partial and marked.
			require.NoError(t, block.Delete(ctx, tbkt, b2.ULID))
			require.NoError(t, block.MarkForDeletion(ctx, tbkt, b1.ULID, "test", clk.Now()))
			del(t, bkt, objName("t1", b1.ULID, block.MetaFilename))
			require.NoError(t, WriteIndex(ctx, bkt, "t1", ix2))
			ix3, rep3, err := u.Update(ctx, "t1")
			require.NoError(t, err)
			require.Equal(t, []ulid.ULID{b3.ULID, b5.ULID}, blockIDs(ix3))
			require.Empty(t, ix3.DeletionMarks)
			require.Len(t, rep3.Partial, 2)
			require.Equal(t, b1.ULID, rep3.Partial[0].ID)
			require.True(t, rep3.Partial[0].DeletionMarked)
		})
	}
}

func TestUpdaterReplacesCorruptIndex(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	b := uploadBlock(t, bkt, "t1", 0)
	put(t, bkt, "t1/"+IndexFilename, "garbage")
	ix, rep, err := NewUpdater(bkt, slog.New(slog.DiscardHandler), time.Now).Update(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b.ULID}, blockIDs(ix))
	require.Equal(t, 1, rep.MetasRead)
}

func TestUpdaterEmptyTenant(t *testing.T) {
	ix, rep, err := NewUpdater(objstore.NewInMemBucket(), slog.New(slog.DiscardHandler), time.Now).Update(context.Background(), "nobody")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks)
	require.Empty(t, rep.Partial)
}
