package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-metrics/strata/block"
)

// BlockRange is the time range of the blocks built from OpenMetrics: 2h,
// aligned, as an ingester cuts them, so that the compactor merges them with
// anything else of the range.
const BlockRange = 2 * 60 * 60 * 1000 // ms

// maxPending is the most samples appended before a commit: bounds the
// appender's memory.
const maxPending = 5000

// BuildOpenMetrics builds TSDB blocks in outDir from the OpenMetrics text
// in input (every sample with a timestamp), one per 2h range that has
// samples, as promtool tsdb create-blocks-from openmetrics does. The
// blocks' ULIDs come from input's SHA-256 and each range's start, so a
// second run on the same file makes the same blocks: an upload resumes
// instead of copying. It returns the blocks' directories, oldest first.
func BuildOpenMetrics(ctx context.Context, input []byte, outDir string) ([]string, error) {
	mint, maxt, err := timeRange(input)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(input)
	var dirs []string
	// One parse of the whole file per range with samples (as promtool):
	// each parse finds the next sample after its range, so empty ranges
	// cost nothing.
	for start := floorDiv(mint, BlockRange) * BlockRange; start <= maxt; {
		dir, next, err := buildRange(ctx, input, start, start+BlockRange, outDir, sum)
		if err != nil {
			return nil, fmt.Errorf("building the block of [%d, %d): %w", start, start+BlockRange, err)
		}
		if dir != "" {
			dirs = append(dirs, dir)
		}
		if next == math.MaxInt64 {
			break
		}
		start = floorDiv(next, BlockRange) * BlockRange
	}
	return dirs, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// timeRange returns the first and last sample timestamps of input.
func timeRange(input []byte) (mint, maxt int64, err error) {
	mint, maxt = math.MaxInt64, math.MinInt64
	p := textparse.NewOpenMetricsParser(input, nil)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("parsing OpenMetrics: %w", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, ts, _ := p.Series()
		if ts == nil {
			var l labels.Labels
			p.Labels(&l)
			return 0, 0, fmt.Errorf("parsing OpenMetrics: sample of %s has no timestamp: a backfill needs one on every sample", l)
		}
		mint, maxt = min(mint, *ts), max(maxt, *ts)
	}
	if mint > maxt {
		return 0, 0, errors.New("parsing OpenMetrics: no samples")
	}
	return mint, maxt, nil
}

// buildRange writes the block of the samples in [start, end) and returns
// its directory ("" when the range has none) and the first timestamp at
// or after end (math.MaxInt64 for none).
func buildRange(ctx context.Context, input []byte, start, end int64, outDir string, sum [32]byte) (dir string, next int64, err error) {
	next = math.MaxInt64
	// The block writer's head takes samples up to half its range behind
	// the newest; a range twice the block's takes the block's in any order.
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), outDir, 2*BlockRange)
	if err != nil {
		return "", 0, err
	}
	defer func() { err = errors.Join(err, w.Close()) }()
	app := w.Appender(ctx)
	p := textparse.NewOpenMetricsParser(input, labels.NewSymbolTable())
	var pending, total int
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, fmt.Errorf("parsing OpenMetrics: %w", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		if *ts >= end {
			next = min(next, *ts)
			continue
		}
		if *ts < start {
			continue
		}
		var l labels.Labels
		p.Labels(&l)
		if _, err := app.Append(0, l, *ts, v); err != nil {
			return "", 0, fmt.Errorf("adding a sample of %s at %d: %w", l, *ts, err)
		}
		total++
		if pending++; pending >= maxPending {
			if err := app.Commit(); err != nil {
				return "", 0, err
			}
			app, pending = w.Appender(ctx), 0
		}
	}
	if err := app.Commit(); err != nil {
		return "", 0, err
	}
	if total == 0 {
		return "", next, nil
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return "", 0, err
	}
	dir, err = renameBlock(outDir, id, stableID(sum, start))
	return dir, next, err
}

// stableID is the ULID of the block of the range starting at start built
// from a file whose SHA-256 is sum: the range's start as its time, the
// hash of both as its entropy.
func stableID(sum [32]byte, start int64) ulid.ULID {
	var b [40]byte
	copy(b[:], sum[:])
	binary.BigEndian.PutUint64(b[32:], uint64(start))
	h := sha256.Sum256(b[:])
	var id ulid.ULID
	_ = id.SetTime(uint64(max(start, 0)))
	_ = id.SetEntropy(h[:10])
	return id
}

// renameBlock gives the block from to the ULID to: its directory and its
// meta.json.
func renameBlock(outDir string, from, to ulid.ULID) (string, error) {
	src, dst := filepath.Join(outDir, from.String()), filepath.Join(outDir, to.String())
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("renaming block %s: %w", from, err)
	}
	m, err := block.ReadMetaFile(dst)
	if err != nil {
		return "", err
	}
	m.ULID = to
	m.Compaction.Sources = []ulid.ULID{to}
	if err := block.WriteMetaFile(dst, m); err != nil {
		return "", err
	}
	return dst, nil
}
