package ingester

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// pushChunks pushes n series of tenant, each with 250 samples a minute
// apart from from (in ms) on: over four hours, three block ranges, and
// three head chunks per series (a chunk holds 120), the older ones ready
// to be m-mapped.
func pushChunks(h *harness, tenant string, series int, from int64) {
	h.t.Helper()
	var ts []*ingesterpb.TimeSeries
	for s := range series {
		tv := make([]float64, 0, 2*250)
		for k := range 250 {
			tv = append(tv, float64(from+int64(k)*60_000), float64(k))
		}
		ts = append(ts, floats(lbls("__name__", "c", "s", fmt.Sprint(s)), tv...))
	}
	h.mustPush(tenant, ts...)
}

// The TSDB's own loop m-maps full head chunks every
// -blocks-storage.tsdb.head-compaction-interval, outside any lock of ours.
// Prometheus' chunk disk mapper (v0.315.1) resets its file sequence when a
// head truncation finds no chunk file, even while a write beside it is
// cutting the first one; the next file cut then panics ("expected newly cut
// file to have sequence:offset"), taking the process down. A fresh tenant's
// first cut (a flush, an idle cut, the first head compaction) is that case.
// Here a goroutine m-maps as the TSDB's loop does while fresh tenants are
// cut, twice each so that a desynchronised mapper cuts a file again.
func TestFirstCutBesideChunkMapping(t *testing.T) {
	cuts := map[string]func(h *harness, u *tenantDB) error{
		"flush": func(h *harness, u *tenantDB) error {
			_, err := h.ing.Flush(context.Background(), u.id)
			return err
		},
		"compaction": func(h *harness, u *tenantDB) error {
			return h.ing.compactHead(context.Background(), u)
		},
	}
	for name, cut := range cuts {
		t.Run(name, func(t *testing.T) {
			h := startShipping(t, defaultConfig(t,
				"-blocks-storage.tsdb.head-compaction-interval=1h",
				"-blocks-storage.tsdb.head-compaction-idle-timeout=0"), t.TempDir(), objstore.NewInMemBucket())
			ctx := context.Background()
			const rounds = 8
			for r := range rounds {
				tenant := fmt.Sprintf("t%02d", r)
				from := t0
				for c := range 3 {
					pushChunks(h, tenant, 200, from)
					from += 250 * 60_000
					u, err := h.ing.acquire(ctx, tenant, false)
					require.NoError(t, err)
					var wg sync.WaitGroup
					blocks := len(u.db.Blocks())
					wg.Go(func() {
						// As the TSDB's loop would, at the worst moment: once
						// the cut's first block is loaded, while the head is
						// truncated.
						deadline := time.Now().Add(5 * time.Second)
						for len(u.db.Blocks()) == blocks && time.Now().Before(deadline) {
							runtime.Gosched()
						}
						time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
						u.db.ForceHeadMMap()
					})
					err = cut(h, u)
					wg.Wait()
					h.ing.release(u)
					require.NoError(t, err, "round %d, cut %d", r, c)
				}
				got := h.query(tenant, t0, from, matcher(ingesterpb.LabelMatcher_EQ, "s", "0"))
				require.Len(t, got, 1)
				require.Len(t, got[0].samples, 3*250, "round %d", r)
			}
		})
	}
}
