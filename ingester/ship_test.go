package ingester

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// startShipping is start with shipping to bkt.
func startShipping(t testing.TB, cfg Config, dir string, bkt objstore.Bucket) *harness {
	t.Helper()
	return startDeps(t, cfg, Deps{DataDir: dir, Bucket: bkt, InstanceID: "ing-1"})
}

// bucketBlocks reads the meta.json of every complete block of tenantID.
func bucketBlocks(t testing.TB, bkt objstore.Bucket, tenantID string) []*block.Meta {
	t.Helper()
	ctx := context.Background()
	tb := objstore.NewPrefixedBucket(bkt, tenantID)
	var metas []*block.Meta
	require.NoError(t, tb.Iter(ctx, "", func(name string) error {
		id, ok := block.ParseDir(name)
		if !ok {
			return nil
		}
		m, err := block.ReadMeta(ctx, tb, id)
		if block.IsNotFound(err) {
			return nil // partial
		}
		require.NoError(t, err)
		metas = append(metas, m)
		return nil
	}))
	return metas
}

func bucketSamples(t testing.TB, bkt objstore.Bucket, tenantID string) (n uint64) {
	t.Helper()
	for _, m := range bucketBlocks(t, bkt, tenantID) {
		n += m.Stats.NumSamples
	}
	return n
}

// The ship loop uploads the blocks the TSDB cuts, and the TSDB deletes a
// local block once it is shipped and -ingester.retain-shipped-for old.
func TestShipLoop(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t,
		"-blocks-storage.tsdb.block-ranges-period=1m", "-blocks-storage.tsdb.head-compaction-interval=1s",
		"-ingester.ship-interval=1s", "-ingester.retain-shipped-for=0s"), t.TempDir(), bkt)
	// Samples of the last hour: a block of them is old enough to delete.
	base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
	ls := lbls("__name__", "up", "job", "a")
	const n = 4 * 60 // 4 minutes of 1 s samples: the head cuts past 1.5 block ranges
	for k := range n {
		h.mustPush("t", floats(ls, float64(base+int64(k)*1000), float64(k)))
	}

	var shipped []*block.Meta
	poll(t, "a block shipped", func() bool {
		shipped = bucketBlocks(t, bkt, "t")
		return len(shipped) > 0
	})
	m := shipped[0]
	require.Equal(t, block.Ext{Tenant: "t", Source: block.SourceIngester, Ingester: "ing-1", Files: m.Strata.Files}, m.Strata)
	poll(t, "the shipped block deleted locally", func() bool {
		u, err := h.ing.acquire(context.Background(), "t", false)
		require.NoError(t, err)
		defer h.ing.release(u)
		for _, b := range u.db.Blocks() {
			if b.Meta().ULID == m.ULID {
				return false
			}
		}
		return true
	})
	got := h.query("t", base, base+n*1000)
	require.Len(t, got, 1)
	require.GreaterOrEqual(t, got[0].samples[0].t, m.MaxTime, "the deleted block's samples are in the bucket only")
}

// POST /ingester/flush cuts every tenant's head and ships it: the bucket
// then holds every sample, and the ingester still answers for them.
func TestFlushHandler(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t), t.TempDir(), bkt)
	const n = 5 * 60 // 5 hours of 1 min samples: three 2 h block ranges
	for _, id := range []string{"a", "b"} {
		s := floats(lbls("__name__", "up", "tenant", id))
		for k := range n {
			s.Samples = append(s.Samples, &ingesterpb.Sample{Timestamp: t0 + int64(k)*60_000, Value: float64(k)})
		}
		h.mustPush(id, s)
	}

	for _, tc := range []struct {
		name, method, query string
		wantStatus          int
		wantBody            string
	}{
		{"get", http.MethodGet, "", http.StatusMethodNotAllowed, "use POST"},
		{"bad tenant", http.MethodPost, "?tenant=..", http.StatusBadRequest, "not allowed"},
		{"unknown tenant", http.MethodPost, "?tenant=nobody", http.StatusOK, `{"tenants":[]}`},
		{"one tenant", http.MethodPost, "?tenant=a", http.StatusOK, `{"tenants":[{"tenant":"a","blocks_shipped":3}]}`},
		{"all tenants", http.MethodPost, "", http.StatusOK, `{"tenants":[{"tenant":"a","blocks_shipped":0},{"tenant":"b","blocks_shipped":3}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ing.FlushHandler().ServeHTTP(rec, httptest.NewRequest(tc.method, "/ingester/flush"+tc.query, nil))
			require.Equal(t, tc.wantStatus, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.wantBody)
		})
	}
	for _, id := range []string{"a", "b"} {
		require.Equal(t, uint64(n), bucketSamples(t, bkt, id), "tenant %s", id)
		got := h.query(id, t0, t0+n*60_000)
		require.Len(t, got, 1)
		require.Len(t, got[0].samples, n, "the local copies still answer")
	}

	// Samples at or before the cut are refused from now on; later ones are
	// taken.
	_, err := h.push("a", floats(lbls("__name__", "up", "tenant", "a"), float64(t0+(n-1)*60_000), 1))
	code, det := errDetails(t, err)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class, "code %v: %v", code, err)
	h.mustPush("a", floats(lbls("__name__", "up", "tenant", "a"), float64(t0+n*60_000), 1))
}

// Pushes running while the head is cut lose nothing: every acknowledged
// sample is in a block or in the head, and ends up in the bucket exactly
// once.
func TestFlushDuringPushes(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	h := startShipping(t, defaultConfig(t), t.TempDir(), bkt)
	const pushers, pushes = 4, 200
	acked := make([][]int64, pushers)
	refused := make([][]error, pushers)
	var wg sync.WaitGroup
	done := make(chan struct{})
	// The first push creates the tenant's TSDB; flushing starts after it.
	h.mustPush("t", floats(lbls("__name__", "c", "p", "first"), float64(t0), 0))
	for p := range pushers {
		wg.Go(func() {
			ls := lbls("__name__", "c", "p", string(rune('a'+p)))
			for k := range pushes {
				ts := t0 + int64(k)*1000
				if _, err := h.push("t", floats(ls, float64(ts), float64(k))); err != nil {
					refused[p] = append(refused[p], err)
					continue
				}
				acked[p] = append(acked[p], ts)
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	flushes, blocks := 0, 0
	for stop := false; !stop && flushes < 100_000; flushes++ {
		select {
		case <-done:
			stop = true
		default:
		}
		res, err := h.ing.Flush(context.Background(), "t")
		require.NoError(t, err)
		for _, tf := range res.Tenants {
			blocks += tf.BlocksShipped
		}
	}
	<-done
	for p := range pushers {
		for _, err := range refused[p] {
			_, det := errDetails(t, err)
			require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class, "only samples behind a cut are refused: %v", err)
		}
	}

	var total int
	for p := range pushers {
		got := h.query("t", t0, t0+pushes*1000, matcher(ingesterpb.LabelMatcher_EQ, "p", string(rune('a'+p))))
		require.Len(t, got, 1)
		var ts []int64
		for _, s := range got[0].samples {
			ts = append(ts, s.t)
		}
		require.Equal(t, acked[p], ts, "pusher %d: exactly the acknowledged samples", p)
		total += len(acked[p])
	}
	require.Greater(t, total, 0)
	t.Logf("%d flushes cut %d blocks; %d of %d pushes refused", flushes, blocks, pushers*pushes-total, pushers*pushes)
	_, err := h.ing.Flush(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(total+1), bucketSamples(t, bkt, "t"), "every acknowledged sample shipped once")
}

// With -ingester.flush-on-shutdown a stopping ingester leaves everything
// in the bucket.
func TestFlushOnShutdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flush bool
	}{
		{"flush", true},
		{"no flush", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bkt := objstore.NewInMemBucket()
			args := []string{"-ingester.ship-interval=1h"}
			if tc.flush {
				args = append(args, "-ingester.flush-on-shutdown")
			}
			h := startShipping(t, defaultConfig(t, args...), t.TempDir(), bkt)
			for k := range 100 {
				h.mustPush("t", floats(lbls("__name__", "up"), float64(t0+int64(k)*1000), 1))
			}
			require.NoError(t, h.stop())
			want := uint64(0)
			if tc.flush {
				want = 100
			}
			require.Equal(t, want, bucketSamples(t, bkt, "t"))
		})
	}
}

func TestFlushUnavailable(t *testing.T) {
	ing := newIngester(t, defaultConfig(t), Deps{DataDir: t.TempDir()})
	rec := httptest.NewRecorder()
	ing.FlushHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/ingester/flush", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Contains(t, rec.Body.String(), "ingester is starting")

	_, err := New(defaultConfig(t), Deps{DataDir: t.TempDir(), Bucket: objstore.NewInMemBucket()})
	require.ErrorContains(t, err, "instance id")
}

func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
