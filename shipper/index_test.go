package shipper

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/bucketindex"
)

func indexIDs(t *testing.T, bkt objstore.Bucket) []ulid.ULID {
	t.Helper()
	ix, err := bucketindex.ReadIndex(context.Background(), bkt, tenantID)
	require.NoError(t, err)
	var ids []ulid.ULID
	for _, b := range ix.Blocks {
		ids = append(ids, b.ID)
	}
	return ids
}

// Sync adds what it uploaded to the tenant's bucket index and tells the
// Indexed hook; the next Sync checks the index once more and adds a block
// a concurrent writer dropped; once seen in the index a block costs no
// more index writes.
func TestSyncIndexesBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b1 := writeBlock(t, dir, 0, 3)
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	m := NewMetrics(prometheus.NewRegistry(), nil)
	clk := newClock(time.Unix(1_800_000_000, 0))
	var hooked []string
	s, err := New(Deps{Dir: dir, Bucket: bkt, Tenant: tenantID, Ingester: "ing-1", Metrics: m, Now: clk.Now,
		Indexed: func(_ context.Context, tenant string) { hooked = append(hooked, tenant) }})
	require.NoError(t, err)

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []ulid.ULID{b1}, indexIDs(t, bkt), "indexed right after the upload")
	require.Equal(t, []string{tenantID}, hooked)
	ix, err := bucketindex.ReadIndex(ctx, bkt, tenantID)
	require.NoError(t, err)
	require.Equal(t, clk.Now().Unix(), ix.Blocks[0].UploadedAt)
	require.Equal(t, "ing-1", ix.Blocks[0].Ingester)

	// A compactor that listed before the upload writes its index over ours.
	require.NoError(t, bucketindex.WriteIndex(ctx, bkt, tenantID, &bucketindex.Index{Version: bucketindex.Version, UpdatedAt: clk.Now().Unix()}))
	b2 := writeBlock(t, dir, 2*time.Hour.Milliseconds(), 3)
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.ElementsMatch(t, []ulid.ULID{b1, b2}, indexIDs(t, bkt), "the dropped block is added again")
	require.Equal(t, 3.0, testutil.ToFloat64(m.indexAdds))

	// The next Sync sees both in the index: no write; the one after does
	// not even read it.
	uploads := bkt.uploads()
	for range 2 {
		_, err = s.Sync(ctx)
		require.NoError(t, err)
	}
	require.Equal(t, uploads, bkt.uploads())
	require.Empty(t, s.unindexed)
	require.Len(t, hooked, 2)
	require.Zero(t, testutil.ToFloat64(m.indexFails))

	// A corrupt index fails the indexing, not the Sync; the block is
	// indexed once the compactor has replaced the index.
	require.NoError(t, bkt.Upload(ctx, tenantID+"/"+bucketindex.IndexFilename, strings.NewReader("junk")))
	b3 := writeBlock(t, dir, 4*time.Hour.Milliseconds(), 3)
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1.0, testutil.ToFloat64(m.indexFails))
	require.NoError(t, bucketindex.DeleteIndex(ctx, bkt, tenantID))
	_, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{b3}, indexIDs(t, bkt))
}
