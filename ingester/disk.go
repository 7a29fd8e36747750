package ingester

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// The free-space reserve (-ingester.min-free-disk-bytes). A WAL write that
// runs out of space fails a tenant (wal_failure.go) and its recovery needs
// room to repair the WAL; so, while the data directory's disk has less free
// space than the reserve, the ingester refuses every push (503, which the
// sender retries) before it appends anything. A goroutine owned by Run
// refreshes the figure every second, and at once after a WAL write failed.

// diskInterval is how often the free space is measured: a statfs costs
// microseconds, and a push stream fills a second's worth of WAL at most.
const diskInterval = time.Second

// diskMonitor measures the free space of the data directory's disk.
type diskMonitor struct {
	dir     string
	reserve uint64 // -ingester.min-free-disk-bytes; 0: never low
	statfs  func(dir string) (uint64, error)

	free atomic.Uint64 // bytes available to the process, last measured
	low  atomic.Bool   // free < reserve at the last measurement
	// kick asks the loop for a measurement now (buffered, one pending).
	kick chan struct{}

	refused prometheus.Counter // strata_ingester_pushes_refused_total{reason="disk_full"}
}

func newDiskMonitor(dir string, reserve int64, reg prometheus.Registerer, refused *prometheus.CounterVec) *diskMonitor {
	d := &diskMonitor{
		dir:     dir,
		reserve: uint64(reserve),
		statfs:  statfsFree,
		kick:    make(chan struct{}, 1),
		refused: refused.WithLabelValues("disk_full"),
	}
	d.free.Store(^uint64(0)) // unknown until measured: not low
	promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_ingester_disk_free_bytes",
		Help: "Free bytes of the disk under -data.dir, as the ingester last measured them (every second); pushes are refused while below -ingester.min-free-disk-bytes.",
	}, func() float64 {
		if f := d.free.Load(); f != ^uint64(0) {
			return float64(f)
		}
		return 0
	})
	return d
}

// statfsFree returns the bytes of dir's file system available to an
// unprivileged process (what the WAL may still write).
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// measure refreshes free and low; a failed statfs keeps the last figures.
func (d *diskMonitor) measure() error {
	free, err := d.statfs(d.dir)
	if err != nil {
		return err
	}
	d.free.Store(free)
	d.low.Store(d.reserve > 0 && free < d.reserve)
	return nil
}

// hasRoom measures now and reports whether the disk is above the reserve
// and has at least n bytes free; a disk that cannot be measured has room.
func (d *diskMonitor) hasRoom(n uint64) bool {
	if err := d.measure(); err != nil {
		return true
	}
	return !d.low.Load() && d.free.Load() >= n
}

// refresh asks for a measurement now; it does not wait for it.
func (d *diskMonitor) refresh() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// run measures every diskInterval and on refresh until ctx is done.
func (d *diskMonitor) run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(diskInterval)
	defer t.Stop()
	var lastErr string
	for {
		if err := d.measure(); err != nil {
			if err.Error() != lastErr {
				onErr(err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// refusePush returns the error of a push refused because the disk is below
// the reserve, or nil. One atomic load: it runs on every push.
func (d *diskMonitor) refusePush() error {
	if !d.low.Load() {
		return nil
	}
	d.refused.Inc()
	return statusError(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, 0, fmt.Sprintf(
		"ingester disk is nearly full: %d bytes free under the data directory, below the reserve of %d (-ingester.min-free-disk-bytes); pushes are refused until space is freed [%s]",
		d.free.Load(), d.reserve, idDiskFull))
}

// startDiskMonitor measures the free space once, then starts the goroutine
// that keeps measuring; stop ends it and waits. Run calls it first.
func (i *Ingester) startDiskMonitor() (stop func()) {
	if err := i.disk.measure(); err != nil {
		i.log.Warn("cannot measure the data directory's free space; the reserve is not enforced until it can", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		i.disk.run(ctx, func(err error) {
			i.log.Warn("cannot measure the data directory's free space", "err", err)
		})
	}()
	return func() {
		cancel()
		<-done
	}
}
