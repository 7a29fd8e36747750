package compactor

import (
	"cmp"
	"slices"
	"time"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

// group is blocks to merge into one: every live block that lies inside
// the aligned window [minT, maxT) of one block range.
type group struct {
	rangeMs    int64
	minT, maxT int64
	blocks     []bucketindex.Block // sorted by ID: the merge order
}

// planner decides which groups are ready to compact.
//
// Stage i groups the live blocks (no deletion or no-compact mark) by the
// aligned window of ranges[i] that holds them whole; a block wider than the
// window waits for a later stage. A group of two or more blocks is merged
// into one, whatever made them: the RF copies of a 2h range (stage 0), a
// complete 12h or 24h range of smaller blocks, or a late block (out-of-order
// samples, an ingester that was down) that overlaps an already compacted
// block. Overlapping blocks are merged sample by sample, so any such group
// ends as one block with each sample once.
//
// A group waits while
//   - an ingester block in it was uploaded less than
//     -compactor.first-level-compaction-wait-period ago: the other
//     ingesters' copies of the range are probably on their way;
//   - (stages after the first) its window ended less than ranges[0] ago:
//     ingesters cut a block about half a range after it ends (at 1.5 ranges
//     of head) and ship it at once, so the window is still receiving blocks.
//
// A block that arrives later anyway is merged in by a later run.
type planner struct {
	ranges         []int64 // ms
	firstLevelWait time.Duration
}

// plan returns stage's ready groups among live, oldest window first.
func (p *planner) plan(live []bucketindex.Block, stage int, now time.Time) []group {
	r := p.ranges[stage]
	windows := map[int64][]bucketindex.Block{}
	for _, b := range live {
		start := floorDiv(b.MinTime, r) * r
		if b.MaxTime > start+r {
			continue
		}
		windows[start] = append(windows[start], b)
	}
	var out []group
	for start, bs := range windows {
		if len(bs) < 2 || !p.ready(bs, stage, start+r, now) {
			continue
		}
		slices.SortFunc(bs, func(a, b bucketindex.Block) int { return a.ID.Compare(b.ID) })
		out = append(out, group{rangeMs: r, minT: start, maxT: start + r, blocks: bs})
	}
	slices.SortFunc(out, func(a, b group) int { return cmp.Compare(a.minT, b.minT) })
	return out
}

// ready reports whether a window ending at end (ms) may be compacted now.
func (p *planner) ready(bs []bucketindex.Block, stage int, end int64, now time.Time) bool {
	if stage > 0 && now.UnixMilli() < end+p.ranges[0] {
		return false
	}
	if p.firstLevelWait <= 0 {
		return true
	}
	settled := now.Add(-p.firstLevelWait).Unix()
	for _, b := range bs {
		if b.Source == block.SourceIngester && b.UploadedAt > settled {
			return false
		}
	}
	return true
}

// floorDiv is a/b rounded toward minus infinity (block times may be
// negative).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
