package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// The long-term workload reuses the node_exporter-like label sets of
// series.go (seriesLabels) but gives each family a value model of its own,
// close to what node_exporter exposes: integer byte and event counters,
// CPU seconds in 1/100 s ticks, filesystem sizes in 4 KiB blocks, whole
// degrees; idle devices and CPU modes (nice, irq, steal) stay constant.
// Every value is a closed-form function of (series, round), so blocks of
// different time ranges are generated independently and a test can tell
// what any queried sample must be.

// valueKind is how one series moves.
type valueKind uint8

const (
	kindConstant valueKind = iota // never changes (idle device, steal, filesystem size)
	kindCounter                   // grows by rate per round, plus jitter in [0, rate)
	kindGauge                     // wobbles around a level, plus a slow drift
)

// seriesModel is the value model of one series.
type seriesModel struct {
	kind  valueKind
	base  float64 // value at round 0 (in units)
	rate  float64 // counter: mean units per round; gauge: noise amplitude in units
	drift float64 // gauge: units per round (filesystems fill up)
	unit  float64 // value = units * unit (1/100 for CPU seconds, 4096 for fs blocks)
}

// cpuTicks are the USER_HZ ticks each CPU mode gains per 15 s scrape on a
// lightly loaded host (1,500 ticks in all); nice, irq and steal stay put.
var cpuTicks = map[string]float64{"idle": 1200, "user": 160, "system": 70, "iowait": 12, "softirq": 6}

// newSeriesModel derives series i's model from its family and a hash of i.
func newSeriesModel(i int) seriesModel {
	j := i % seriesPerHost
	f := families[j%len(families)]
	k := j / len(families)
	h := mix(uint64(i) ^ 0x5eed)
	u := float64(h%10000) / 10000 // uniform [0, 1)
	idle := func(share float64) bool { return float64(h>>40%1000)/1000 < share }
	logUniform := func(lo, hi float64) float64 { return math.Round(lo * math.Pow(hi/lo, u)) }
	base := float64(h >> 24 % 1e9)
	switch f.name {
	case "node_cpu_seconds_total":
		t := cpuTicks[cpuModes[k%8]]
		if t == 0 {
			return seriesModel{kind: kindConstant, base: float64(h >> 24 % 5000), unit: 0.01}
		}
		return seriesModel{kind: kindCounter, base: base / 10, rate: math.Round(t * (0.5 + u)), unit: 0.01}
	case "node_network_receive_bytes_total", "node_network_transmit_bytes_total":
		if idle(0.3) {
			return seriesModel{kind: kindConstant, base: base, unit: 1}
		}
		return seriesModel{kind: kindCounter, base: base * 100, rate: logUniform(1e3, 1e8), unit: 1}
	case "node_disk_read_bytes_total", "node_disk_written_bytes_total":
		if idle(0.4) {
			return seriesModel{kind: kindConstant, base: base, unit: 512}
		}
		return seriesModel{kind: kindCounter, base: base, rate: logUniform(8, 2e5), unit: 512}
	case "node_interrupts_total":
		if idle(0.25) {
			return seriesModel{kind: kindConstant, base: base, unit: 1}
		}
		return seriesModel{kind: kindCounter, base: base, rate: logUniform(1, 5000), unit: 1}
	case "node_softnet_processed_total":
		return seriesModel{kind: kindCounter, base: base, rate: logUniform(10, 20000), unit: 1}
	case "node_filesystem_avail_bytes":
		if idle(0.5) {
			return seriesModel{kind: kindConstant, base: base, unit: 4096}
		}
		return seriesModel{kind: kindGauge, base: base, rate: logUniform(2, 2000), drift: -u / 4, unit: 4096}
	case "node_hwmon_temp_celsius":
		return seriesModel{kind: kindGauge, base: 35 + float64(h>>24%30), rate: 2, unit: 1}
	}
	return seriesModel{kind: kindConstant, base: base, unit: 1} // node_filesystem_size_bytes and any family added later
}

// at returns the value of series i (model m) at round r.
func (m *seriesModel) at(i int, r int64) float64 {
	switch m.kind {
	case kindCounter:
		// base + rate*r + jitter(r) with jitter in [0, rate): every
		// increment lies in (0, 2*rate), so the counter never goes down.
		j := float64(mix(uint64(i)<<24^uint64(r))%1024) / 1024
		return (m.base + m.rate*float64(r) + math.Floor(m.rate*j)) * m.unit
	case kindGauge:
		n := float64(mix(uint64(i)<<24^uint64(r))%1024)/1024*2 - 1 // [-1, 1)
		// A slow wave (period of hours, per series) plus noise, in whole units.
		period := 240 + float64(mix(uint64(i))%720)
		w := math.Sin(2 * math.Pi * float64(r) / period)
		return math.Round(m.base+m.drift*float64(r)+m.rate*(w+n/2)) * m.unit
	}
	return m.base * m.unit
}

// genSpan is the generated data: series × rounds, a round every interval
// from start (ms, aligned to the block range).
type genSpan struct {
	series   int
	start    int64 // ms of round 0
	interval int64 // ms
	rounds   int64
}

// roundAt returns the round whose timestamp is ts, or false.
func (g genSpan) roundAt(ts int64) (int64, bool) {
	if ts < g.start || (ts-g.start)%g.interval != 0 {
		return 0, false
	}
	r := (ts - g.start) / g.interval
	return r, r < g.rounds
}

func (g genSpan) end() int64 { return g.start + g.rounds*g.interval } // exclusive

// genStats is what writing the ingester blocks produced.
type genStats struct {
	Blocks       int           // distinct 2h blocks (each uploaded rf times)
	Samples      int64         // distinct samples
	BlockBytes   int64         // bytes of one copy of every 2h block
	UploadBytes  int64         // bytes uploaded: rf copies
	GenerateTime time.Duration // writing the blocks locally
	UploadTime   time.Duration
	Wall         time.Duration // generating and uploading, workers at once
}

// writeIngesterBlocks writes the span as 2h blocks (blockRange ms), one per
// range as an ingester's head compaction would cut it, and uploads each rf
// times under a fresh ULID with Ext{Source: ingester, Ingester:
// ingester-<n>}: the copies rf ingesters would ship. workers ranges are
// generated at once.
func writeIngesterBlocks(ctx context.Context, g genSpan, blockRange int64, rf, workers int, tbkt objstore.Bucket, tenant, dir string, log *slog.Logger) (genStats, error) {
	var (
		mu    sync.Mutex
		st    genStats
		first error
	)
	lbls := make([]labels.Labels, g.series)
	models := make([]seriesModel, g.series)
	for i := range g.series {
		lbls[i] = labelsOf(seriesLabels(i))
		models[i] = newSeriesModel(i)
	}
	ranges := make(chan int64)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for mint := range ranges {
				t0 := time.Now()
				bdir, n, err := writeBlock(ctx, g, mint, mint+blockRange, lbls, models, filepath.Join(dir, "gen-"+strconv.Itoa(w)))
				gen := time.Since(t0)
				var size, up int64
				t1 := time.Now()
				if err == nil {
					size, up, err = uploadCopies(ctx, tbkt, bdir, tenant, rf)
					os.RemoveAll(bdir)
				}
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("block %s: %w", time.UnixMilli(mint).UTC().Format(time.RFC3339), err)
				}
				st.Blocks++
				st.Samples += n
				st.BlockBytes += size
				st.UploadBytes += up
				st.GenerateTime += gen
				st.UploadTime += time.Since(t1)
				mu.Unlock()
			}
		}()
	}
	for mint := g.start; mint < g.end(); mint += blockRange {
		select {
		case ranges <- mint:
		case <-ctx.Done():
		}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
	}
	close(ranges)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	log.Debug("ingester blocks written", "blocks", st.Blocks, "samples", st.Samples)
	return st, first
}

// labelsOf converts sorted label pairs to labels.Labels.
func labelsOf(ls [][2]string) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l[0], l[1])
	}
	return b.Labels()
}

// writeBlock writes the samples of [mint, maxt) into one block under dir
// with the range's aligned bounds in meta.json, as an ingester cuts it, and
// returns its directory and sample count.
func writeBlock(ctx context.Context, g genSpan, mint, maxt int64, lbls []labels.Labels, models []seriesModel, dir string) (string, int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", 0, fmt.Errorf("make block dir: %w", err)
	}
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, maxt-mint)
	if err != nil {
		return "", 0, fmt.Errorf("open block writer: %w", err)
	}
	defer w.Close()
	refs := make([]storage.SeriesRef, len(lbls))
	var n int64
	r0 := max(0, (mint-g.start+g.interval-1)/g.interval)
	for r := r0; r < g.rounds; r++ {
		ts := g.start + r*g.interval
		if ts >= maxt {
			break
		}
		app := w.Appender(ctx)
		for i := range lbls {
			ref, err := app.Append(refs[i], lbls[i], ts, models[i].at(i, r))
			if err != nil {
				app.Rollback()
				return "", 0, fmt.Errorf("append: %w", err)
			}
			refs[i] = ref
		}
		if err := app.Commit(); err != nil {
			return "", 0, fmt.Errorf("commit: %w", err)
		}
		n += int64(len(lbls))
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("flush block: %w", err)
	}
	bdir := filepath.Join(dir, id.String())
	m, err := block.ReadMetaFile(bdir)
	if err != nil {
		return "", 0, err
	}
	m.MinTime, m.MaxTime = mint, maxt
	if err := block.WriteMetaFile(bdir, m); err != nil {
		return "", 0, err
	}
	return bdir, n, nil
}

// uploadCopies uploads the block in bdir rf times, each under a new ULID
// as the block of ingester-<n>, and returns one copy's bytes and all bytes
// uploaded (meta.json included).
func uploadCopies(ctx context.Context, tbkt objstore.Bucket, bdir, tenant string, rf int) (int64, int64, error) {
	var one, all int64
	for n := range rf {
		m, err := block.ReadMetaFile(bdir)
		if err != nil {
			return 0, 0, err
		}
		m.ULID = ulid.Make()
		m.Compaction.Sources = []ulid.ULID{m.ULID}
		if err := block.WriteMetaFile(bdir, m); err != nil {
			return 0, 0, err
		}
		up, err := block.Upload(ctx, tbkt, bdir, block.Ext{Tenant: tenant, Source: block.SourceIngester, Ingester: "ingester-" + strconv.Itoa(n)})
		if err != nil {
			return 0, 0, err
		}
		var size int64
		for _, f := range up.Strata.Files {
			size += f.Size
		}
		if n == 0 {
			one = size
		}
		all += size
	}
	return one, all, nil
}
