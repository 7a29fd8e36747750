package ingester

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// requireUnavailable checks that err is a 503-class push error carrying id.
func requireUnavailable(t testing.TB, err error, id string) {
	t.Helper()
	code, det := errDetails(t, err)
	require.Equal(t, codes.Unavailable, code, err.Error())
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, det.Class)
	require.Contains(t, err.Error(), "["+id+"]")
}

// metricValue reads one metric of the harness' registry.
func (h *harness) metricValue(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	require.NoError(h.t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for k := 0; k+1 < len(labels); k += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[k] && lp.GetValue() == labels[k+1]
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	h.t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// TestWALFailureCountersCaptured pins the names of the TSDB's failed-write
// counters (wal_failure.go): a Prometheus upgrade that renames them makes
// pushes after a failed write look acknowledged, and must fail here first.
func TestWALFailureCountersCaptured(t *testing.T) {
	h := start(t, defaultConfig(t, "-ingester.out-of-order-time-window=1h"), t.TempDir())
	h.mustPush("t", floats(lbls("__name__", "up"), float64(t0), 1))
	u, err := h.ing.acquire(context.Background(), "t", false)
	require.NoError(t, err)
	defer h.ing.release(u)
	require.NotNil(t, u.health.wal.wal.Load(), "%s not captured", walWritesFailedName)
	require.NotNil(t, u.health.wal.wbl.Load(), "%s not captured", wblWritesFailedName)
	require.False(t, u.health.wal.failed())

	// The captured metric reads the live counter: the name is the one the
	// TSDB's registry exports.
	mfs, err := u.reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.Contains(t, names, walWritesFailedName)
	require.Contains(t, names, wblWritesFailedName)
}

// TestPushAfterFailedWALWriteIsRefused: a push whose Commit succeeds after
// another push's WAL write failed has its records behind the torn one; it
// must not be acknowledged, the tenant must refuse pushes until reopened,
// and the reopened tenant must take pushes again. The failed write is
// simulated by moving the captured counter, as WL.Log does under its mutex.
func TestPushAfterFailedWALWriteIsRefused(t *testing.T) {
	h := startWith(t, defaultConfig(t), t.TempDir(), func(i *Ingester) { i.recov.retry = 10 * time.Millisecond })
	ls := lbls("__name__", "up", "job", "a")
	h.mustPush("t", floats(ls, float64(t0), 1))
	h.mustPush("other", floats(ls, float64(t0), 1))

	u, err := h.ing.acquire(context.Background(), "t", false)
	require.NoError(t, err)
	fake := prometheus.NewCounter(prometheus.CounterOpts{Name: "fake_wal_writes_failed_total"})
	u.health.wal.wal.Store(&watchedCounter{m: fake})
	h.ing.release(u)
	fake.Inc() // another push's write failed

	_, err = h.push("t", floats(ls, float64(t0+1000), 2))
	requireUnavailable(t, err, idWALWriteFailed)
	require.Contains(t, err.Error(), `tenant "t"`)
	require.Equal(t, 1.0, h.metricValue("strata_ingester_wal_write_failures_total"))

	// The other tenant is untouched.
	h.mustPush("other", floats(ls, float64(t0+1000), 2))

	// The tenant is reopened: pushes go through again, and the reopened
	// TSDB watches its own (new) counter.
	poll(t, "tenant reopened", func() bool {
		_, err := h.push("t", floats(ls, float64(t0+2000), 3))
		return err == nil
	})
	require.Equal(t, 1.0, h.metricValue("strata_ingester_tenant_recoveries_total"))
	require.Equal(t, 0.0, h.metricValue("strata_ingester_failed_tenants"))
	got := h.query("t", t0, t0+3000)
	require.Len(t, got, 1)
	require.Equal(t, t0+2000, got[0].samples[len(got[0].samples)-1].t)
}

// TestDiskReserveRefusesPushes: below -ingester.min-free-disk-bytes every
// push is refused with 503 before it appends anything; the free space is
// exported; pushes resume once space is back.
func TestDiskReserveRefusesPushes(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	h := startWith(t, defaultConfig(t, "-ingester.min-free-disk-bytes=1000000"), t.TempDir(), func(i *Ingester) {
		i.disk.statfs = func(string) (uint64, error) { return free.Load(), nil }
	})
	ls := lbls("__name__", "up")
	h.mustPush("t", floats(ls, float64(t0), 1))
	require.Equal(t, float64(1<<30), h.metricValue("strata_ingester_disk_free_bytes"))

	free.Store(999999)
	h.ing.disk.refresh()
	poll(t, "disk seen low", func() bool { return h.ing.disk.low.Load() })
	_, err := h.push("t", floats(lbls("__name__", "new_series"), float64(t0+1000), 1))
	requireUnavailable(t, err, idDiskFull)
	require.Contains(t, err.Error(), "-ingester.min-free-disk-bytes")
	require.Equal(t, 999999.0, h.metricValue("strata_ingester_disk_free_bytes"))
	require.Equal(t, 1.0, h.metricValue("strata_ingester_pushes_refused_total", "reason", "disk_full"))
	require.Len(t, h.query("t", t0, t0+1000), 1, "a refused push creates nothing")

	free.Store(1000000)
	h.ing.disk.refresh()
	poll(t, "disk seen free", func() bool { return !h.ing.disk.low.Load() })
	h.mustPush("t", floats(ls, float64(t0+1000), 1))
}

// TestTenantThatFailsToOpenDoesNotStopOthers: a tenant whose TSDB cannot be
// opened at start is refused (503) while the others serve and the ingester
// turns ready; once the cause is gone its reopening succeeds. (Before, Run
// failed as a whole: TestRunFailsOnBrokenTSDB, which this replaces.)
func TestTenantThatFailsToOpenDoesNotStopOthers(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig(t)
	h := start(t, cfg, dir)
	h.mustPush("good", floats(lbls("__name__", "up"), float64(t0), 1))
	h.mustPush("broken", floats(lbls("__name__", "up"), float64(t0), 1))
	require.NoError(t, h.stop())

	// The broken tenant's WAL directory is a file: its TSDB cannot open.
	walDir := filepath.Join(dir, "tsdb", "broken", "wal")
	saved := t.TempDir()
	require.NoError(t, os.Rename(walDir, filepath.Join(saved, "wal")))
	require.NoError(t, os.WriteFile(walDir, []byte("not a directory"), 0o666))

	h2 := startWith(t, cfg, dir, func(i *Ingester) { i.recov.retry = 10 * time.Millisecond })
	require.NoError(t, h2.ing.CheckReady(context.Background()))
	require.Len(t, h2.query("good", t0, t0), 1)
	h2.mustPush("good", floats(lbls("__name__", "up"), float64(t0+1000), 1))
	_, err := h2.push("broken", floats(lbls("__name__", "up"), float64(t0+1000), 1))
	requireUnavailable(t, err, idTenantUnavailable)
	require.Contains(t, err.Error(), `tenant "broken"`)
	_, err = h2.queryLimit("broken", t0, t0+1000, 0)
	requireUnavailable(t, err, idTenantUnavailable)
	require.GreaterOrEqual(t, h2.metricValue("strata_ingester_tenant_open_failures_total"), 1.0)
	require.Equal(t, 1.0, h2.metricValue("strata_ingester_failed_tenants"))

	// The operator fixes the disk: the retry opens it with its data.
	require.NoError(t, os.Remove(walDir))
	require.NoError(t, os.Rename(filepath.Join(saved, "wal"), walDir))
	poll(t, "broken tenant reopened", func() bool {
		_, err := h2.push("broken", floats(lbls("__name__", "up"), float64(t0+1000), 1))
		return err == nil
	})
	got := h2.query("broken", t0, t0+1000)
	require.Len(t, got, 1)
	require.Len(t, got[0].samples, 2)
	require.Equal(t, 0.0, h2.metricValue("strata_ingester_failed_tenants"))
}

// TestInterruptedRepairKeepsOriginal: a WAL repair that was interrupted
// (the disk filled while it copied the corrupted segment) leaves the
// original as <segment>.repair and a partial copy in its place. The next
// open must repair from the original, not rename the partial copy over it.
func TestInterruptedRepairKeepsOriginal(t *testing.T) {
	dir := t.TempDir()
	cfg := defaultConfig(t)
	h := start(t, cfg, dir)
	const pushes, nseries = 60, 50
	for p := range pushes {
		var series []*ingesterpb.TimeSeries
		for s := range nseries {
			// Label values that do not compress: the records fill pages.
			id := sha256.Sum256(fmt.Appendf(nil, "%d/%d", p, s))
			series = append(series, floats(lbls("__name__", "m", "id", fmt.Sprintf("%x", id)), float64(t0+int64(p)*1000), float64(p)))
		}
		h.mustPush("t", series...)
	}
	require.NoError(t, h.stop())

	// The segment holding the records, with a torn record appended (what a
	// failed write leaves), so that opening it needs a repair.
	walDir := filepath.Join(dir, "tsdb", "t", "wal")
	first, last, err := wlog.Segments(walDir)
	require.NoError(t, err)
	var seg string
	var size int64
	for k := first; k <= last; k++ {
		fi, err := os.Stat(wlog.SegmentName(walDir, k))
		require.NoError(t, err)
		if fi.Size() > size {
			seg, size = wlog.SegmentName(walDir, k), fi.Size()
		}
	}
	require.Greater(t, size, int64(3*32<<10), "records span several pages")
	f, err := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{2, 0, 100, 0, 0, 0, 0, 1, 2, 3}) // recFirst of 100 bytes, cut short
	require.NoError(t, err)
	require.NoError(t, f.Close())
	// The interrupted repair: original renamed, a partial copy in its place.
	orig, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.NoError(t, os.Rename(seg, seg+".repair"))
	require.NoError(t, os.WriteFile(seg, orig[:32<<10+1000], 0o666))

	h2 := start(t, cfg, dir)
	got := h2.query("t", t0, t0+pushes*1000)
	require.Len(t, got, pushes*nseries, "series lost: the interrupted repair had not copied them")
	_, err = os.Stat(seg + ".repair")
	require.True(t, errors.Is(err, os.ErrNotExist), ".repair left behind: %v", err)
}

func TestRestoreInterruptedRepairsWBL(t *testing.T) {
	dir := t.TempDir()
	wbl := filepath.Join(dir, wlog.WblDirName)
	require.NoError(t, os.MkdirAll(wbl, 0o777))
	require.NoError(t, os.WriteFile(filepath.Join(wbl, "00000003.repair"), []byte("original"), 0o666))
	require.NoError(t, os.WriteFile(filepath.Join(wbl, "00000003"), []byte("part"), 0o666))
	restored, err := restoreInterruptedRepairs(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(wbl, "00000003")}, restored)
	b, err := os.ReadFile(filepath.Join(wbl, "00000003"))
	require.NoError(t, err)
	require.Equal(t, "original", string(b))
}
