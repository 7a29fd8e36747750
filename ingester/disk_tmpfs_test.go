package ingester

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it at cleanup (after the ingester on it stopped: cleanups run last
// registered first). It skips the test, saying why, only when mounting is
// not permitted (not root, or a sandbox without CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if errors.Is(err, syscall.EPERM) || os.Geteuid() != 0 {
			t.Skipf("SKIP: needs a real tmpfs to fill, and mounting one is not permitted here (run as root with CAP_SYS_ADMIN): %v", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			fds, _ := os.ReadDir("/proc/self/fd")
			for _, fd := range fds {
				if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); strings.HasPrefix(l, dir) {
					t.Logf("still open under the tmpfs: %s", l)
				}
			}
			maps, _ := os.ReadFile("/proc/self/maps")
			for _, l := range strings.Split(string(maps), "\n") {
				if strings.Contains(l, dir) {
					t.Logf("still mapped from the tmpfs: %s", l)
				}
			}
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a filler file into dir until its disk is full, then
// frees leave bytes of it; removing the file frees the rest.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	fi, err := f.Stat()
	require.NoError(t, err)
	require.NoError(t, f.Truncate(max(0, fi.Size()-leave)))
	require.NoError(t, f.Close())
	return p
}

// seriesKey is labelString of ls sorted, as queries return them.
func seriesKey(ls []*ingesterpb.Label) string {
	sorted := slices.Clone(ls)
	slices.SortFunc(sorted, func(a, b *ingesterpb.Label) int { return strings.Compare(a.Name, b.Name) })
	return labelString(sorted)
}

// fullDiskLedger records what every push of the test was told.
type fullDiskLedger struct {
	mu        sync.Mutex
	acked     map[string]map[int64]float64 // series -> acknowledged samples
	ambiguous map[string]bool              // series of pushes whose own commit failed: may or may not be stored
	refused   map[string]bool              // unique series of pushes refused before appending
	nAcked    int
	nFailed   int
}

// TestFullDiskLosesNoAcknowledgedSample runs the real ingester on a small
// tmpfs, fills it so that WAL writes hit ENOSPC in the middle of pushes,
// frees it and keeps pushing, then replays a crash copy of the data dir.
// Every acknowledged sample must be there, no series of a refused push may
// exist (in the recovered head or after the replay), and a tenant that did
// not write meanwhile is queried throughout without an error.
//
// Each push creates series whose WAL record spans pages (a short write
// tears it) and appends to series shared between pushes, some created by
// pushes that fail: a push acknowledged after another's torn record, or
// appending to a series whose record never reached the WAL, would lose its
// samples on replay.
func TestFullDiskLosesNoAcknowledgedSample(t *testing.T) {
	mnt := mountTmpfs(t, 64<<20)
	// No reserve: the WAL itself must hit ENOSPC, and the reopening must
	// cope with a disk that is still full (its repair fails and is retried).
	cfg := defaultConfig(t, "-ingester.min-free-disk-bytes=0")
	h := startWith(t, cfg, mnt, func(i *Ingester) { i.recov.retry = 20 * time.Millisecond })

	// Tenant b writes before the disk fills and is read throughout.
	var bSeries []*ingesterpb.TimeSeries
	for s := range 20 {
		bSeries = append(bSeries, floats(lbls("__name__", "b_metric", "s", fmt.Sprint(s)), float64(t0), 1, float64(t0+1000), 2))
	}
	h.mustPush("b", bSeries...)
	readB := func() error {
		got, err := h.queryLimit("b", t0, t0+1000, 0)
		if err == nil && len(got) != 20 {
			err = fmt.Errorf("tenant b: %d series, want 20", len(got))
		}
		return err
	}
	require.NoError(t, readB())
	stopReading := make(chan struct{})
	var bReads, bErrs int
	var bFirstErr error
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stopReading:
				return
			case <-time.After(5 * time.Millisecond):
			}
			bReads++
			if err := readB(); err != nil {
				bErrs++
				if bFirstErr == nil {
					bFirstErr = err
				}
			}
		}
	})

	led := &fullDiskLedger{acked: map[string]map[int64]float64{}, ambiguous: map[string]bool{}, refused: map[string]bool{}}
	var (
		seq    sync.Mutex
		nextID int
	)
	// push sends one push of writer w and records its fate.
	push := func(w int) (acked bool) {
		seq.Lock()
		id := nextID
		nextID++
		seq.Unlock()
		ts := t0 + int64(id)*1000
		var series []*ingesterpb.TimeSeries
		var unique []string
		for s := range 150 {
			sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d", id, s))
			ls := lbls("__name__", "fill", "push", fmt.Sprint(id), "s", fmt.Sprint(s), "id", fmt.Sprintf("%x", sum))
			series = append(series, floats(ls, float64(ts), float64(id)))
			unique = append(unique, seriesKey(ls))
		}
		// Shared series: a new set every 5 pushes of a writer, appended to by
		// the writer's next pushes (in time order: one writer, increasing ids).
		for s := range 10 {
			ls := lbls("__name__", "shared", "gen", fmt.Sprint(id/10), "s", fmt.Sprint(s), "w", fmt.Sprint(w))
			series = append(series, floats(ls, float64(ts), float64(id)))
		}
		_, err := h.push("a", series...)
		led.mu.Lock()
		defer led.mu.Unlock()
		if err == nil {
			led.nAcked++
			for _, s := range series {
				k := seriesKey(s.Labels)
				if led.acked[k] == nil {
					led.acked[k] = map[int64]float64{}
				}
				led.acked[k][ts] = float64(id)
			}
			return true
		}
		led.nFailed++
		st, _ := status.FromError(err)
		if st.Code() != codes.Unavailable {
			t.Errorf("push %d: %v, want a 503-class error", id, err)
		}
		if strings.Contains(err.Error(), "commit push to tsdb") {
			for _, s := range series {
				led.ambiguous[seriesKey(s.Labels)] = true
			}
		} else {
			for _, k := range unique {
				led.refused[k] = true
			}
		}
		return false
	}

	// Some pushes on a disk with room, then fill it to a few pages short.
	for range 5 {
		require.True(t, push(0))
	}
	filler := fillDisk(t, mnt, 2<<20)

	// Two writers push until the full disk has failed enough of them.
	var writers sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for w := range 2 {
		writers.Go(func() {
			for k := 0; k < 2000 && time.Now().Before(deadline); k++ {
				push(w)
				led.mu.Lock()
				done := led.nFailed >= 20
				led.mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	writers.Wait()
	led.mu.Lock()
	require.GreaterOrEqual(t, led.nFailed, 20, "the full disk failed too few pushes")
	ackedWhileFull := led.nAcked
	led.mu.Unlock()

	// Space is freed; the writers go on until each has 10 pushes in a row
	// acknowledged.
	require.NoError(t, os.Remove(filler))
	for w := range 2 {
		writers.Go(func() {
			inRow := 0
			for inRow < 10 && time.Now().Before(deadline) {
				if push(w) {
					inRow++
				} else {
					inRow = 0
					time.Sleep(10 * time.Millisecond) // a sender's retry backoff
				}
			}
			if inRow < 10 {
				t.Errorf("writer %d: pushes not acknowledged again after space was freed", w)
			}
		})
	}
	writers.Wait()
	close(stopReading)
	readers.Wait()
	require.Positive(t, bReads)
	require.Zero(t, bErrs, "tenant b's queries failed while tenant a's disk was full: first %v", bFirstErr)
	h.mustPush("b", floats(lbls("__name__", "b_metric", "s", "0"), float64(t0+2000), 3))
	t.Logf("pushes: %d acknowledged (%d before space was freed), %d failed (%d series of commit-failed pushes, %d of refused ones)",
		led.nAcked, ackedWhileFull, led.nFailed, len(led.ambiguous), len(led.refused))

	check := func(h *harness, what string) {
		t.Helper()
		end := t0 + int64(nextID)*1000
		got := h.query("a", t0, end, matcher(ingesterpb.LabelMatcher_RE, "__name__", ".+"))
		found := map[string]map[int64]float64{}
		unacked := 0
		for _, s := range got {
			if !led.ambiguous[s.labels] && led.acked[s.labels] == nil {
				unacked++
			}
			m := map[int64]float64{}
			for _, smp := range s.samples {
				m[smp.t] = smp.f
			}
			found[s.labels] = m
		}
		if unacked > 0 {
			t.Errorf("%s: %d series of pushes that were refused", what, unacked)
		}
		lost := 0
		for k, samples := range led.acked {
			for ts, v := range samples {
				if got, ok := found[k][ts]; !ok || got != v {
					lost++
				}
			}
		}
		if lost > 0 {
			t.Errorf("%s: %d acknowledged samples lost", what, lost)
		}
		// Series the head has but no query returns: created by failed pushes.
		stats, err := h.client.UserStats(context.Background(), &ingesterpb.UserStatsRequest{Tenant: "a"})
		require.NoError(t, err)
		if n := stats.GetNumSeries(); n != uint64(len(got)) {
			t.Errorf("%s: the head holds %d series, %d with samples: the others were created by failed pushes", what, n, len(got))
		}
	}
	check(h, "recovered ingester")

	// What a kill -9 would leave, replayed.
	crashed := t.TempDir()
	copyDir(t, mnt, crashed)
	h.stopFn0()
	h2 := start(t, cfg, crashed)
	check(h2, "replayed crash copy")
}

// TestDiskReserveOnTmpfs: the reserve check on a real file system: statfs
// of the data dir sees the filler, pushes are refused with 503 before
// anything is appended, and resume once the filler is gone.
func TestDiskReserveOnTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, 64<<20)
	h := start(t, defaultConfig(t, "-ingester.min-free-disk-bytes=33554432"), mnt) // 32 MiB
	ls := lbls("__name__", "up")
	h.mustPush("t", floats(ls, float64(t0), 1))

	filler := fillDisk(t, mnt, 16<<20)
	h.ing.disk.refresh()
	poll(t, "disk seen below the reserve", func() bool { return h.ing.disk.low.Load() })
	require.Less(t, h.metricValue("strata_ingester_disk_free_bytes"), float64(32<<20))
	_, err := h.push("t", floats(lbls("__name__", "refused"), float64(t0+1000), 1))
	requireUnavailable(t, err, idDiskFull)
	require.Len(t, h.query("t", t0, t0+1000, matcher(ingesterpb.LabelMatcher_RE, "__name__", ".+")), 1, "a refused push creates nothing")

	require.NoError(t, os.Remove(filler))
	h.ing.disk.refresh()
	poll(t, "disk seen above the reserve", func() bool { return !h.ing.disk.low.Load() })
	h.mustPush("t", floats(ls, float64(t0+1000), 1))
}
