package ingester

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// TestConcurrentNewSeriesSurviveCrash: pairs of writers push the same new
// series at once, each its own timestamps, so one push creates each series
// and the other appends to it. The data dir is then copied as it is on disk (what a
// kill -9 leaves: every commit is in the WAL files, nothing more) and an
// ingester opened on the copy must replay every acknowledged sample. Before
// pushes creating series were ordered first (push.go: appendRequest), a push
// could commit samples of a series whose record its creator had not logged
// yet, and the replay dropped them as samples of an unknown series.
// (TestConcurrentPushesToOneSeriesKeepOrder covers more writers per series.)
func TestConcurrentNewSeriesSurviveCrash(t *testing.T) {
	cfg := defaultConfig(t, "-ingester.out-of-order-time-window=1h")
	h := start(t, cfg, t.TempDir())
	const writers, rounds, nseries = 4, 30, 40
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked int
	)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var series []*ingesterpb.TimeSeries
				for s := range nseries {
					ls := lbls("__name__", fmt.Sprintf("race_round_%d", r), "pair", fmt.Sprint(g/2), "s", fmt.Sprint(s))
					series = append(series, floats(ls, float64(t0+int64(r)*60000+int64(g)), float64(g)))
				}
				if _, err := h.push("tenant-a", series...); err != nil {
					t.Errorf("writer %d round %d: %v", g, r, err)
					return
				}
				mu.Lock()
				acked += nseries
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, writers*rounds*nseries, acked)

	crashed := t.TempDir()
	copyDir(t, h.dir, crashed)
	h.stopFn0()

	h2 := start(t, cfg, crashed)
	got := h2.query("tenant-a", t0, t0+int64(rounds)*60000)
	var n int
	for _, s := range got {
		n += len(s.samples)
	}
	require.Len(t, got, rounds*nseries*writers/2)
	if n != acked {
		short := 0
		for _, s := range got {
			if len(s.samples) < 2 {
				short++
			}
		}
		t.Fatalf("%d of %d acknowledged samples after replaying the WAL as a kill -9 left it; %d series lack their second writer's sample", n, acked, short)
	}
}

// copyDir copies the regular files of src into dst, keeping the tree.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || d.Name() == "lock" {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	require.NoError(t, err)
}

// TestConcurrentPushesToOneSeriesKeepOrder: several writers push samples to
// the same existing series at once, each push a newer timestamp than the
// one issued before it. A push whose sample is older than one already
// committed may be refused (out of order), but every acknowledged sample
// must be in memory and must replay from the data dir as a kill -9 leaves
// it. Were two pushes on one series to commit in the other order than they
// appended, the head would drop the older sample at commit without an
// out-of-order window (acknowledged, yet never stored), and with one it
// would log it behind the newer one in the WAL, which a replay drops.
func TestConcurrentPushesToOneSeriesKeepOrder(t *testing.T) {
	for _, window := range []string{"0s", "1h"} {
		t.Run("ooo-window="+window, func(t *testing.T) {
			cfg := defaultConfig(t, "-ingester.out-of-order-time-window="+window)
			h := start(t, cfg, t.TempDir())
			const writers, rounds, nseries = 4, 150, 20
			series := func(ts int64) []*ingesterpb.TimeSeries {
				out := make([]*ingesterpb.TimeSeries, nseries)
				for s := range nseries {
					out[s] = floats(lbls("__name__", "shared", "s", fmt.Sprint(s)), float64(ts), float64(ts))
				}
				return out
			}
			h.mustPush("tenant-a", series(t0)...) // the series exist
			var (
				wg    sync.WaitGroup
				next  atomic.Int64
				mu    sync.Mutex
				acked = map[int64]bool{t0: true}
			)
			next.Store(t0)
			for g := range writers {
				wg.Go(func() {
					for r := range rounds {
						ts := next.Add(1000)
						if _, err := h.push("tenant-a", series(ts)...); err != nil {
							if status.Code(err) != codes.InvalidArgument {
								t.Errorf("writer %d round %d: %v", g, r, err)
								return
							}
							continue // refused as out of order: not acknowledged
						}
						mu.Lock()
						acked[ts] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			end := next.Load()
			missing := func(h *harness) (n int) {
				got := h.query("tenant-a", t0, end)
				require.Len(t, got, nseries)
				for _, s := range got {
					have := map[int64]bool{}
					for _, smp := range s.samples {
						have[smp.t] = true
					}
					for ts := range acked {
						if !have[ts] {
							n++
						}
					}
				}
				return n
			}
			require.Zero(t, missing(h), "acknowledged samples missing from memory (of %d)", len(acked)*nseries)

			crashed := t.TempDir()
			copyDir(t, h.dir, crashed)
			h.stopFn0()
			h2 := start(t, cfg, crashed)
			require.Zero(t, missing(h2), "acknowledged samples missing after replaying the WAL as a kill -9 left it (of %d)", len(acked)*nseries)
		})
	}
}
