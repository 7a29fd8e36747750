package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// tenantOf returns tenant id's open DB.
func (h *harness) tenantOf(id string) *tenantDB {
	h.t.Helper()
	u, err := h.ing.acquire(context.Background(), id, false)
	require.NoError(h.t, err)
	require.NotNil(h.t, u, "tenant %s has no TSDB", id)
	h.ing.release(u)
	return u
}

// A head that received no push for the idle timeout is cut whole and
// shipped; a head pushed to within the timeout is left alone, and so is
// an idle head with nothing in it.
func TestCutIdleHeads(t *testing.T) {
	// The loop checks hourly: the test calls cutIdleHeads itself.
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t, "-blocks-storage.tsdb.head-compaction-idle-timeout=1h", "-blocks-storage.tsdb.head-compaction-interval=1h"), t.TempDir(), bkt)
	const n = 5 * 60 // 5 hours of 1 min samples: three 2 h block ranges
	for _, id := range []string{"idle", "busy"} {
		s := floats(lbls("__name__", "up", "tenant", id))
		for k := range n {
			s.Samples = append(s.Samples, &ingesterpb.Sample{Timestamp: t0 + int64(k)*60_000, Value: float64(k)})
		}
		h.mustPush(id, s)
	}
	ctx := context.Background()
	now := time.Now()
	cuts := func() float64 { return testutil.ToFloat64(h.ing.idle.cuts) }

	require.Zero(t, h.ing.cutIdleHeads(ctx, now.Add(59*time.Minute)), "both pushed within the hour")
	require.Empty(t, bucketBlocks(t, bkt, "idle"))

	h.tenantOf("idle").lastPush.Store(now.Add(-61 * time.Minute).UnixNano()) // the fake clock
	require.Equal(t, 1, h.ing.cutIdleHeads(ctx, now))
	require.Equal(t, 1.0, cuts())
	require.Equal(t, uint64(n), bucketSamples(t, bkt, "idle"), "the whole head shipped")
	require.Len(t, bucketBlocks(t, bkt, "idle"), 3)
	ix, err := bucketindex.ReadIndex(ctx, bkt, "idle")
	require.NoError(t, err)
	require.Len(t, ix.Blocks, 3, "and in the bucket index")
	require.Empty(t, bucketBlocks(t, bkt, "busy"))

	require.Zero(t, h.ing.cutIdleHeads(ctx, now), "an empty head is not cut again")
	require.Equal(t, 1.0, cuts())
	got := h.query("idle", t0, t0+n*60_000)
	require.Len(t, got, 1)
	require.Len(t, got[0].samples, n, "the local blocks still answer")

	// The tenant pushes again: samples after the cut are taken, and its
	// head is idle again only a timeout later.
	h.mustPush("idle", floats(lbls("__name__", "up", "tenant", "idle"), float64(t0+n*60_000), 1))
	require.Zero(t, h.ing.cutIdleHeads(ctx, time.Now().Add(59*time.Minute)))
	require.Equal(t, 2, h.ing.cutIdleHeads(ctx, time.Now().Add(61*time.Minute)), "both idle by then")
	require.Equal(t, uint64(n+1), bucketSamples(t, bkt, "idle"))
	require.Equal(t, uint64(n), bucketSamples(t, bkt, "busy"))
}

// A push in flight while the idle check waits for the barrier makes the
// head busy: the check, made again under the barrier, does not cut it.
func TestIdleCutWaitsForPushInFlight(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t, "-blocks-storage.tsdb.head-compaction-interval=1h"), t.TempDir(), bkt) // the test cuts, not the loop
	h.mustPush("a", floats(lbls("__name__", "up"), float64(t0), 1))
	u := h.tenantOf("a")
	now := time.Now()
	u.lastPush.Store(now.Add(-2 * time.Hour).UnixNano())

	u.ship.pushing.RLock() // a push between its start and its commit
	cut := make(chan int)
	go func() { cut <- h.ing.cutIdleHeads(context.Background(), now) }()
	// TryRLock fails once a writer waits: the cut is at the barrier.
	for k := 0; ; k++ {
		require.Less(t, k, 10_000, "the idle cut never reached the barrier")
		if !u.ship.pushing.TryRLock() {
			break
		}
		u.ship.pushing.RUnlock()
		time.Sleep(time.Millisecond)
	}
	u.markPush(now) // the push marks itself, appends and commits
	u.ship.pushing.RUnlock()
	require.Zero(t, <-cut, "a head receiving a push is not cut")
	require.Empty(t, bucketBlocks(t, bkt, "a"))
}

// The idle loop runs on its own: with a short timeout a block reaches the
// bucket without any call or new push.
func TestIdleLoopShips(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t,
		"-blocks-storage.tsdb.head-compaction-idle-timeout=1s", "-blocks-storage.tsdb.head-compaction-interval=1s"), t.TempDir(), bkt)
	h.mustPush("a", floats(lbls("__name__", "up"), float64(t0), 1, float64(t0+60_000), 2))
	poll(t, "the idle head shipped", func() bool { return bucketSamples(t, bkt, "a") == 2 })
	require.Equal(t, 1.0, testutil.ToFloat64(h.ing.idle.cuts))
}

func TestIdleTimeoutValidate(t *testing.T) {
	cfg := defaultConfig(t, "-blocks-storage.tsdb.head-compaction-idle-timeout=0")
	require.NoError(t, cfg.Validate(), "0 turns it off")
	cfg.HeadCompactionIdleTimeout = -time.Second
	require.ErrorContains(t, cfg.Validate(), "-blocks-storage.tsdb.head-compaction-idle-timeout")
}
