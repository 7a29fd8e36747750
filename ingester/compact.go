package ingester

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Head compaction. Each tenant's TSDB is opened with its own compaction
// turned off (openDB): the compaction loop here cuts the heads, one tenant
// at a time, every -blocks-storage.tsdb.head-compaction-interval, and then
// cuts the idle ones (idle.go).
//
// Why not the TSDB's own loop: Prometheus' chunk disk mapper (v0.315.1)
// resets its file sequence when a head truncation finds no chunk file of
// its own, even while a chunk write beside it is cutting that first file;
// the next file cut then panics ("expected newly cut file to have
// sequence:offset") and takes every tenant of the process down. Chunks
// are written beside a truncation by pushes (out-of-order chunks) and by
// the TSDB's loop, which m-maps full head chunks on a timer that no lock
// of ours covers. A head truncation runs inside every compaction. So
// while a tenant's mapper has not cut a file since its TSDB was opened
// (a new tenant, or a restart: the files found at open are not its own),
// a compaction holds the tenant's pushes and m-maps every full chunk
// first. If that cut a file, the compaction goes on beside pushes; if
// there was nothing to m-map, the pushes stay held through it, so that
// nothing is written beside the truncation. Once the mapper has cut a
// file, a truncation never removes the current one and compactions run
// beside pushes, as in Prometheus.

// compactMetrics count the loop's compactions.
type compactMetrics struct {
	held     prometheus.Counter
	failures prometheus.Counter
	duration prometheus.Histogram
}

func newCompactMetrics(reg prometheus.Registerer) *compactMetrics {
	f := promauto.With(reg)
	return &compactMetrics{
		held: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_head_compactions_holding_pushes_total",
			Help: "Head compactions that held their tenant's pushes throughout, because its TSDB had not cut a head chunk file since it was opened and had no full chunk to m-map.",
		}),
		failures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ingester_head_compaction_failures_total",
			Help: "Head compaction checks that failed (logged); retried at the next interval.",
		}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                            "strata_ingester_head_compaction_duration_seconds",
			Help:                            "Time of one tenant's compaction check, including the blocks it cut.",
			Buckets:                         prometheus.ExponentialBuckets(0.001, 4, 10),
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}),
	}
}

// chunkFiles lists the head chunk files of the TSDB in dir.
func chunkFiles(dir string) []os.FileInfo {
	ents, err := os.ReadDir(filepath.Join(dir, "chunks_head"))
	if err != nil {
		return nil
	}
	out := make([]os.FileInfo, 0, len(ents))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			out = append(out, fi)
		}
	}
	return out
}

// cutChunkFile reports whether u's chunk disk mapper has cut a file since
// u's TSDB was opened: a file in chunks_head that was not there at open.
func (u *tenantDB) cutChunkFile() bool {
	if u.chunkFileCut.Load() {
		return true
	}
	for _, fi := range chunkFiles(u.db.Dir()) {
		seen := false
		for _, old := range u.chunkFilesAtOpen {
			if os.SameFile(fi, old) {
				seen = true
				break
			}
		}
		if !seen {
			u.chunkFileCut.Store(true)
			return true
		}
	}
	return false
}

// quietChunkWrites makes sure no chunk write can run beside a head
// truncation of u that is about to start: while u's mapper has not cut a
// file since open, it m-maps every full head chunk now. The caller holds
// u.ship.pushing exclusively, so no push makes new ones meanwhile.
func (u *tenantDB) quietChunkWrites() {
	if !u.cutChunkFile() {
		u.db.ForceHeadMMap()
	}
}

// startCompactionLoop starts the goroutine that compacts heads and cuts
// idle ones every -blocks-storage.tsdb.head-compaction-interval; stop
// cancels it and waits for it. Run calls it once the ingester is running.
func (i *Ingester) startCompactionLoop() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(i.cfg.HeadCompactionInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				i.compactHeads(ctx)
				if i.cfg.HeadCompactionIdleTimeout > 0 {
					i.cutIdleHeads(ctx, time.Now())
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// compactHeads compacts each tenant's head, one tenant at a time: the
// TSDB cuts a block when its head spans one and a half block ranges.
func (i *Ingester) compactHeads(ctx context.Context) {
	for _, u := range i.snapshot(nil) {
		if ctx.Err() != nil {
			return
		}
		if err := i.compactHead(ctx, u); err != nil && ctx.Err() == nil {
			i.compact.failures.Inc()
			i.log.Warn("head compaction failed; retrying at the next interval", "tenant", u.id, "err", err)
		}
	}
}

// compactHead runs u's TSDB compaction; a tenant being reopened, closed or
// refused after a failed WAL write is left alone.
func (i *Ingester) compactHead(ctx context.Context, u *tenantDB) error {
	if !u.health.drain.TryRLock() {
		return nil // being reopened (tenant_recover.go)
	}
	defer u.health.drain.RUnlock()
	if u.health.closed.Load() || u.health.failure.Load() != nil {
		return nil
	}
	u.ship.cutMu.Lock() // one cut at a time: a flush or an idle cut waits
	defer u.ship.cutMu.Unlock()
	start := time.Now()
	defer func() { i.compact.duration.Observe(time.Since(start).Seconds()) }()
	if !u.cutChunkFile() {
		// M-map every full chunk with the pushes held: if that cuts the
		// mapper's first file, the compaction can run beside pushes; if
		// there was nothing to m-map, nothing can be written beside the
		// truncation while they stay held (every series has at most one
		// head chunk: the head is small).
		u.ship.pushing.Lock()
		u.db.ForceHeadMMap()
		if u.cutChunkFile() {
			u.ship.pushing.Unlock()
		} else {
			i.compact.held.Inc()
			defer u.ship.pushing.Unlock()
		}
	}
	return u.db.Compact(ctx)
}
