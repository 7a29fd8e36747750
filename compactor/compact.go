package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

// compact runs the stages over live, oldest range first; each stage sees
// the blocks the previous one wrote, so a run goes as far as the ranges
// are ready (2h copies → 2h → 12h → 24h). A failed group is counted and
// its error returned (joined); the other groups go on.
func (tr *tenantRun) compact(ctx context.Context, live []bucketindex.Block) error {
	var errs []error
	for stage := range tr.c.planner.ranges {
		for _, g := range tr.c.planner.plan(live, stage, tr.now) {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			res, err := tr.compactGroup(ctx, g)
			live = slices.DeleteFunc(live, func(b bucketindex.Block) bool { return slices.Contains(res.removed, b.ID) })
			if res.out != nil {
				live = append(live, *res.out)
			}
			if err != nil && ctx.Err() == nil {
				tr.c.m.compactionFailures.Inc()
				errs = append(errs, fmt.Errorf("compacting the %s range at %s: %w", rangeLabel(g.rangeMs), time.UnixMilli(g.minT).UTC().Format(time.RFC3339), err))
			}
		}
	}
	return errors.Join(errs...)
}

// groupResult is what a group's compaction changed: the block it wrote,
// and the blocks no longer live (merged, vanished or marked no-compact).
type groupResult struct {
	out     *bucketindex.Block
	removed []ulid.ULID
	// unreadable are the blocks marked no-compact (also in removed): only
	// blocks whose damage was proven from the bucket (an object missing or
	// of the wrong size, or a fresh download failing the same way), never
	// one whose local copy alone failed. Only these may be marked for
	// deletion by dropCoveredCopies.
	unreadable []ulid.ULID
}

// input is one downloaded block of a group.
type input struct {
	b     bucketindex.Block
	meta  *block.Meta
	dir   string
	block *tsdb.Block
	// copies counts the downloads of the block, to name a fresh one.
	copies int
}

// compactGroup downloads g's blocks, merges them into one, uploads it and
// marks the inputs for deletion. A block that cannot be downloaded, opened
// or read, and fails the same way downloaded afresh (recheck), is marked
// no-compact and left out; the rest are merged if two or more remain. A
// failure of the local copy only (a fresh download reads fine, or a local
// error such as EMFILE or ENOSPC) is the group's failure, retried next
// run, never the block's. The work directory is removed on return.
func (tr *tenantRun) compactGroup(ctx context.Context, g group) (groupResult, error) {
	start := time.Now()
	var res groupResult
	dir := filepath.Join(tr.c.cfg.DataDir, tr.tenant, fmt.Sprintf("%d-%d", g.minT, g.maxT))
	if err := os.RemoveAll(dir); err != nil {
		return res, fmt.Errorf("cleaning work directory: %w", err)
	}
	defer os.RemoveAll(dir)

	var ins []*input
	defer func() {
		for _, in := range ins {
			in.block.Close()
		}
	}()
	for _, b := range g.blocks {
		in, err := tr.fetch(ctx, b, dir, &res)
		if err != nil {
			return res, err
		}
		if in != nil {
			ins = append(ins, in)
		}
	}

	for len(ins) >= 2 {
		ids, err := tr.c.merge(ctx, filepath.Join(dir, "out"), ins)
		if err == nil {
			res, err = tr.finish(ctx, g, ins, ids, filepath.Join(dir, "out"), start, res)
			if err == nil {
				tr.dropCoveredCopies(ctx, g, ins, &res)
			}
			return res, err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		if localFailure(ctx, err) {
			return res, fmt.Errorf("merging %d blocks: %w", len(ins), err)
		}
		// Find the blocks that cannot be read; without them, try again.
		// When every block reads fine the failure is the machine's.
		n := len(ins)
		var (
			kept []*input
			lerr error
		)
		for _, in := range ins {
			if lerr == nil {
				bad, err := tr.verifyInput(ctx, in, &res)
				if bad {
					in.block.Close()
					continue
				}
				lerr = err
			}
			kept = append(kept, in)
		}
		ins = kept
		if lerr != nil {
			return res, lerr
		}
		if len(ins) == n {
			return res, fmt.Errorf("merging %d blocks: %w", n, err)
		}
	}
	// One copy left of a first-level range that had unreadable ones: if
	// it reads whole, it may stand for them (dropCoveredCopies decides).
	if len(ins) == 1 && len(res.unreadable) > 0 && tr.mayDropCopies(g) {
		bad, err := tr.verifyInput(ctx, ins[0], &res)
		if err != nil {
			return res, err
		}
		if bad {
			ins[0].block.Close()
			ins = nil
			return res, nil
		}
		tr.dropCoveredCopies(ctx, g, ins, &res)
	}
	return res, nil
}

// verifyInput reads every sample of in (verifyBlock). When its local copy
// fails, it proves the damage from the bucket (recheck): proven, the block
// is marked no-compact and bad is true (in.block stays open, for the
// caller to close); not proven, in is switched to the fresh copy, which
// reads fine. A local failure, or one the recheck could not settle, is
// returned: the group's failure, retried next run.
func (tr *tenantRun) verifyInput(ctx context.Context, in *input, res *groupResult) (bad bool, err error) {
	verr := tr.c.verifyBlock(ctx, in.block)
	if verr == nil {
		return false, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if localFailure(ctx, verr) {
		return false, fmt.Errorf("reading the local copy of block %s: %w", in.b.ID, verr)
	}
	in.copies++
	rdir := filepath.Join(filepath.Dir(in.dir), fmt.Sprintf("%s.%d", in.b.ID, in.copies))
	pb, err := tr.recheck(ctx, in.meta, rdir, true)
	var d *damagedError
	if errors.As(err, &d) {
		tr.noCompact(ctx, in.b.ID, d.reason, d.err, res)
		os.RemoveAll(rdir) // removed with the work directory anyway
		return true, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, fmt.Errorf("block %s failed to read (%v) and could not be checked against the bucket: %w", in.b.ID, verr, err)
	}
	tr.log.Warn("the local copy of a block failed to read but a fresh download reads fine: not the block's fault", "block", in.b.ID, "err", verr)
	in.block.Close()
	if err := os.RemoveAll(in.dir); err != nil {
		tr.log.Warn("removing a local block copy", "dir", in.dir, "err", err)
	}
	in.block, in.dir = pb, rdir
	return false, nil
}

// damagedError is a block fault proven from the bucket; reason is that of
// strata_compactor_blocks_marked_no_compact_total.
type damagedError struct {
	reason string
	err    error
}

func (e *damagedError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }

// recheck proves from the bucket a failure of the local copy of block m:
// it checks the sizes of m's objects (damaged), downloads the block again
// into the fresh directory bdir, opens it and, with verify, reads every
// sample. A fault of the block is returned as a *damagedError; any other
// error (bucket, local disk, shutdown) settles nothing. On success the
// fresh copy is returned, open.
func (tr *tenantRun) recheck(ctx context.Context, m *block.Meta, bdir string, verify bool) (*tsdb.Block, error) {
	if err := os.RemoveAll(bdir); err != nil {
		return nil, fmt.Errorf("cleaning %s: %w", bdir, err)
	}
	bad, err := tr.damaged(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("checking block %s in the bucket: %w", m.ULID, err)
	}
	if bad {
		return nil, &damagedError{noCompactDownload, errors.New("an object is missing or not of the size meta.json says")}
	}
	if err := block.Download(ctx, tr.tbkt, m, bdir); err != nil {
		if ctx.Err() == nil {
			if bad, cerr := tr.damaged(ctx, m); cerr == nil && bad {
				return nil, &damagedError{noCompactDownload, err}
			}
		}
		return nil, err
	}
	pb, err := tr.c.openBlock(tr.c.tsdbLog, bdir)
	if err != nil {
		if localFailure(ctx, err) {
			return nil, err
		}
		return nil, &damagedError{noCompactOpen, err}
	}
	if verify {
		if err := tr.c.verifyBlock(ctx, pb); err != nil {
			pb.Close()
			if localFailure(ctx, err) {
				return nil, err
			}
			return nil, &damagedError{noCompactRead, err}
		}
	}
	return pb, nil
}

// localFailure reports whether err is the machine's rather than a block's:
// shutdown, or a local resource or disk error (too many open files, no
// memory for mmap, no space, I/O error).
func localFailure(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOSPC, syscall.EIO, syscall.EDQUOT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// mayDropCopies reports whether g is a group whose unreadable blocks may
// be marked for deletion: the first-level copies of one range (every
// block an ingester's, naming it), with the replication factor known.
func (tr *tenantRun) mayDropCopies(g group) bool {
	if tr.c.rf < 2 || g.rangeMs != tr.c.planner.ranges[0] {
		return false
	}
	for _, b := range g.blocks {
		if b.Source != block.SourceIngester || b.Ingester == "" {
			return false
		}
	}
	return true
}

// dropCoveredCopies marks g's unreadable blocks (already no-compact) for
// deletion when the copies that read fine (good: merged, or one copy
// verified whole) hold every acknowledged sample of them (coveredCopies),
// so that queries of the range stop failing on them; otherwise they stay,
// no-compact, and queries of their range fail naming them unless the
// querier finds them covered by other copies. Each decision is logged.
func (tr *tenantRun) dropCoveredCopies(ctx context.Context, g group, good []*input, res *groupResult) {
	if len(res.unreadable) == 0 || !tr.mayDropCopies(g) {
		return
	}
	byID := make(map[ulid.ULID]bucketindex.Block, len(g.blocks))
	for _, b := range g.blocks {
		byID[b.ID] = b
	}
	var lost, served []string
	for _, id := range res.unreadable {
		lost = append(lost, byID[id].Ingester)
	}
	for _, in := range good {
		served = append(served, in.b.Ingester)
	}
	ok, why := coveredCopies(lost, served, tr.c.rf)
	for _, id := range res.unreadable {
		if !ok {
			tr.log.Warn("keeping unreadable block marked no-compact: the other copies of its range do not cover it", "block", id, "ingester", byID[id].Ingester, "copies", why)
			continue
		}
		reason := fmt.Sprintf("unreadable copy of a range whose other copies read fine (%s)", why)
		if err := block.MarkForDeletion(ctx, tr.tbkt, id, reason, tr.now); err != nil {
			// It stays no-compact; queries of its range still have the
			// querier's rule.
			tr.log.Error("marking unreadable block for deletion", "block", id, "err", err)
			continue
		}
		tr.changed = true
		tr.c.m.markedDeletion.WithLabelValues(reasonDamaged).Inc()
		tr.log.Warn("unreadable block marked for deletion: the other copies of its range hold its samples", "block", id, "ingester", byID[id].Ingester, "copies", why)
	}
}

// coveredCopies reports whether the copies of a first-level range by the
// ingesters lost (unreadable) are covered by those of the ingesters served
// (read fine), rf being the ingesters' replication factor; the second
// result describes the copies, for the log.
//
// The rule (the querier's storequery applies the same one): a write is
// acknowledged once Q = rf/2+1 of its rf ingesters hold it, so each
// acknowledged sample is in the copies of at least Q ingesters. Losing the
// copies of L ingesters loses no sample while L <= Q-1, provided the
// holders' copies are all there: we require the copies of at least rf
// distinct ingesters, every one read fine but the L lost. So rf 2: one
// good copy covers the other; rf 3: two good copies cover a third, one
// good copy covers nothing (a sample may be on exactly the two others);
// rf 1: never. An ingester with one unreadable block counts as lost even
// if another of its blocks read fine. With more ingesters than rf each
// copy holds only its ingesters' series and the count cannot prove a
// given series' holders are among them; the rule then assumes every
// holder shipped its copy before the group was planned (the first-level
// wait period exists for that).
func coveredCopies(lost, served []string, rf int) (bool, string) {
	l := map[string]bool{}
	for _, ing := range lost {
		l[ing] = true
	}
	s := map[string]bool{}
	for _, ing := range served {
		if !l[ing] {
			s[ing] = true
		}
	}
	why := fmt.Sprintf("%d ingester(s) read fine, %d lost, replication factor %d", len(s), len(l), rf)
	quorum := rf/2 + 1
	return rf >= 2 && len(l) <= quorum-1 && len(s)+len(l) >= rf, why
}

// fetch downloads and opens block b into dir/<id>. It returns nil (and
// records the block in res) when the block vanished or is proven
// unreadable from the bucket, and an error for a failure that may pass
// (bucket, local disk or resources, shutdown). A local copy that fails to
// open is downloaded again (recheck); the fresh copy is used if it opens.
func (tr *tenantRun) fetch(ctx context.Context, b bucketindex.Block, dir string, res *groupResult) (*input, error) {
	m, err := block.ReadMeta(ctx, tr.tbkt, b.ID)
	if block.IsNotFound(err) {
		res.removed = append(res.removed, b.ID) // deleted since the listing
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	bdir := filepath.Join(dir, b.ID.String())
	if err := block.Download(ctx, tr.tbkt, m, bdir); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		bad, cerr := tr.damaged(ctx, m)
		if cerr != nil || !bad {
			return nil, err
		}
		tr.noCompact(ctx, b.ID, noCompactDownload, err, res)
		return nil, os.RemoveAll(bdir)
	}
	pb, err := tr.c.openBlock(tr.c.tsdbLog, bdir)
	if err == nil {
		return &input{b: b, meta: m, dir: bdir, block: pb}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if localFailure(ctx, err) {
		return nil, fmt.Errorf("opening the local copy of block %s: %w", b.ID, err)
	}
	if rerr := os.RemoveAll(bdir); rerr != nil {
		return nil, fmt.Errorf("removing a local block copy: %w", rerr)
	}
	rdir := filepath.Join(dir, b.ID.String()+".1")
	pb, rerr := tr.recheck(ctx, m, rdir, false)
	var d *damagedError
	if errors.As(rerr, &d) {
		tr.noCompact(ctx, b.ID, d.reason, d.err, res)
		return nil, os.RemoveAll(rdir)
	}
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("block %s failed to open (%v) and could not be checked against the bucket: %w", b.ID, err, rerr)
	}
	tr.log.Warn("the local copy of a block failed to open but a fresh download opens: not the block's fault", "block", b.ID, "err", err)
	return &input{b: b, meta: m, dir: rdir, block: pb, copies: 1}, nil
}

// openBlock opens the block in dir; a panic of Prometheus' decoders on a
// damaged file is an error.
func openBlock(log *slog.Logger, dir string) (b *tsdb.Block, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("opening block panicked: %v", r)
		}
	}()
	return tsdb.OpenBlock(log, dir, nil, nil)
}

// damaged reports whether a failed download is the block's fault: one of
// its objects is missing or not of the size meta.json says.
func (tr *tenantRun) damaged(ctx context.Context, m *block.Meta) (bool, error) {
	for _, f := range m.Strata.Files {
		attrs, err := tr.tbkt.Attributes(ctx, path.Join(m.ULID.String(), f.Path))
		if tr.tbkt.IsObjNotFoundErr(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if attrs.Size != f.Size {
			return true, nil
		}
	}
	return false, nil
}

// merge compacts the inputs, in order, into a new block under dest. The
// merge keeps every sample once: identical chunks of replicas are kept
// once as they are, overlapping ones are decoded and merged sample by
// sample (the first input's value wins a timestamp tie), so the result
// depends only on the inputs and their order.
func (c *Compactor) merge(ctx context.Context, dest string, ins []*input) (ids []ulid.ULID, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compaction panicked: %v", r)
		}
	}()
	comp, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, c.tsdbLog, c.planner.ranges, nil, tsdb.LeveledCompactorOptions{
		MergeFunc:                   storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge),
		EnableOverlappingCompaction: true,
		Metrics:                     c.tsdbMetrics,
	})
	if err != nil {
		return nil, err
	}
	dirs := make([]string, len(ins))
	open := make([]*tsdb.Block, len(ins))
	for i, in := range ins {
		dirs[i], open[i] = in.dir, in.block
	}
	return comp.Compact(dest, dirs, open)
}

// finish uploads the merged block (none when the inputs held no samples)
// and marks the inputs for deletion.
func (tr *tenantRun) finish(ctx context.Context, g group, ins []*input, ids []ulid.ULID, outDir string, start time.Time, res groupResult) (groupResult, error) {
	var inBytes int64
	inIDs := make([]ulid.ULID, len(ins))
	for i, in := range ins {
		inBytes += in.b.SizeBytes
		inIDs[i] = in.b.ID
	}
	reason := "compacted into no block: no samples"
	var out *block.Meta
	if len(ids) > 0 {
		var err error
		out, err = block.Upload(ctx, tr.tbkt, filepath.Join(outDir, ids[0].String()), block.Ext{Tenant: tr.tenant, Source: block.SourceCompactor})
		if err != nil {
			// Best effort: a partial block would otherwise wait a day.
			if derr := block.Delete(context.WithoutCancel(ctx), tr.tbkt, ids[0]); derr != nil {
				tr.log.Warn("removing partial upload", "block", ids[0], "err", derr)
			}
			return res, fmt.Errorf("uploading compacted block: %w", err)
		}
		reason = "compacted into " + out.ULID.String()
	}
	tr.changed = true
	var outBytes int64
	if out != nil {
		for _, f := range out.Strata.Files {
			outBytes += f.Size
		}
		res.out = &bucketindex.Block{
			ID: out.ULID, MinTime: out.MinTime, MaxTime: out.MaxTime, Source: block.SourceCompactor,
			CompactionLevel: out.Compaction.Level, UploadedAt: tr.now.Unix(), SizeBytes: outBytes,
		}
	}
	for _, id := range inIDs {
		if err := block.MarkForDeletion(ctx, tr.tbkt, id, reason, tr.now); err != nil {
			// The new block and the unmarked inputs overlap: correct,
			// and merged again by the next run.
			return res, fmt.Errorf("marking compacted block %s for deletion: %w", id, err)
		}
		res.removed = append(res.removed, id)
		tr.c.m.markedDeletion.WithLabelValues(reasonCompaction).Inc()
	}
	m := tr.c.m
	m.compactions.WithLabelValues(rangeLabel(g.rangeMs)).Inc()
	m.blocksCompacted.Add(float64(len(ins)))
	m.inputBytes.Add(float64(inBytes))
	m.outputBytes.Add(float64(outBytes))
	attrs := []any{"range", rangeLabel(g.rangeMs), "min_time", time.UnixMilli(g.minT).UTC(), "inputs", inIDs,
		"input_bytes", inBytes, "output_bytes", outBytes, "duration", time.Since(start).Truncate(time.Millisecond)}
	if out != nil {
		attrs = append(attrs, "block", out.ULID, "series", out.Stats.NumSeries, "samples", out.Stats.NumSamples)
	}
	tr.log.Info("compacted blocks", attrs...)
	return res, nil
}

// noCompact marks block id no-compact for reason, counts and logs it, and
// records it in res (no longer live). Call it only for a block whose
// damage was proven from the bucket (see groupResult.unreadable). A failure to write the mark is
// logged: the block is skipped in this run anyway and found bad again in
// the next.
func (tr *tenantRun) noCompact(ctx context.Context, id ulid.ULID, reason string, cause error, res *groupResult) {
	res.removed = append(res.removed, id)
	res.unreadable = append(res.unreadable, id)
	tr.c.m.noCompact.WithLabelValues(reason).Inc()
	tr.log.Error("block unreadable: marked no-compact and skipped", "block", id, "reason", reason, "err", cause)
	if err := block.MarkNoCompact(ctx, tr.tbkt, id, reason+": "+cause.Error(), tr.now); err != nil {
		tr.log.Error("writing no-compact mark", "block", id, "err", err)
		return
	}
	tr.changed = true
}

// rangeLabel formats a block range in ms as "2h", "12h", "30m".
func rangeLabel(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
