package ingester

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// TestConcurrentNewSeriesSurviveCrash: writers push the same new series at
// once, each its own timestamps, so one push creates each series and the
// others append to it. The data dir is then copied as it is on disk (what a
// kill -9 leaves: every commit is in the WAL files, nothing more) and an
// ingester opened on the copy must replay every acknowledged sample. Before
// pushes creating series were ordered first (push.go: appendRequest), a push
// could commit samples of a series whose record its creator had not logged
// yet, and the replay dropped them as samples of an unknown series.
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
					ls := lbls("__name__", fmt.Sprintf("race_round_%d", r), "s", fmt.Sprint(s))
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
	require.Len(t, got, rounds*nseries)
	require.Equal(t, acked, n, "acknowledged samples after replaying the WAL as a kill -9 left it")
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
