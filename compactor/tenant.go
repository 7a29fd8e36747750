package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

// partialReportAge is the age from which a block without meta.json is
// reported (logged, strata_compactor_partial_blocks): younger ones are
// uploads in progress.
const partialReportAge = time.Hour

// tenantRun is one tenant's share of a run.
type tenantRun struct {
	c      *Compactor
	tenant string
	tbkt   objstore.Bucket
	log    *slog.Logger
	now    time.Time
	// changed: the run marked, wrote or deleted something, so the index
	// is listed again before it is written.
	changed bool
}

// runTenant updates tenant's index, applies retention, compacts (when
// compact is set), deletes what is due and writes the index. Each step's
// failure is returned (joined) without stopping the later steps; a bad
// block is no failure (it is marked no-compact and skipped).
func (c *Compactor) runTenant(ctx context.Context, tenant string, compact bool, stats *runStats) error {
	tr := &tenantRun{
		c: c, tenant: tenant, tbkt: objstore.NewPrefixedBucket(c.bkt, tenant),
		log: c.log.With("tenant", tenant), now: c.now(),
	}
	ix, rep, err := c.updater.Update(ctx, tenant)
	if err != nil {
		c.m.indexUpdateFailures.Inc()
		return err
	}
	tr.report(rep, stats)

	var errs []error
	gone := map[ulid.ULID]bool{} // marked or no-compact in this run
	if err := tr.applyRetention(ctx, ix, gone); err != nil {
		errs = append(errs, err)
	}
	if compact {
		if err := tr.compact(ctx, tr.live(ix, rep, gone)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := tr.deleteMarked(ctx, ix); err != nil {
		errs = append(errs, err)
	}
	if err := tr.deletePartial(ctx, rep); err != nil {
		errs = append(errs, err)
	}
	if ctx.Err() != nil {
		return errors.Join(append(errs, ctx.Err())...)
	}
	if tr.changed {
		if ix, rep, err = c.updater.Update(ctx, tenant); err != nil {
			c.m.indexUpdateFailures.Inc()
			return errors.Join(append(errs, err)...)
		}
	}
	// Shippers add their blocks to the index as they upload them: keep
	// those uploaded since the listing (bucketindex/add.go).
	if _, err := c.updater.KeepAdded(ctx, tenant, ix); err != nil {
		c.m.indexUpdateFailures.Inc()
		return errors.Join(append(errs, err)...)
	}
	if err := tr.writeIndex(ctx, ix, rep); err != nil {
		c.m.indexUpdateFailures.Inc()
		errs = append(errs, err)
	} else {
		c.m.indexUpdates.Inc()
	}
	return errors.Join(errs...)
}

// writeIndex writes the index, or deletes it when the tenant has nothing
// left in the bucket (its directory disappears with its last object).
func (tr *tenantRun) writeIndex(ctx context.Context, ix *bucketindex.Index, rep *bucketindex.Report) error {
	if len(ix.Blocks) == 0 && len(rep.Partial) == 0 && len(rep.Corrupt) == 0 {
		return bucketindex.DeleteIndex(ctx, tr.c.bkt, tr.tenant)
	}
	return bucketindex.WriteIndex(ctx, tr.c.bkt, tr.tenant, ix)
}

// report logs and counts the blocks the index leaves out.
func (tr *tenantRun) report(rep *bucketindex.Report, stats *runStats) {
	for _, p := range rep.Partial {
		if age := p.Age(tr.now); age >= partialReportAge && !p.DeletionMarked {
			stats.partial.Add(1)
			tr.log.Warn("partial block (no meta.json): an upload that failed half way; deleted once -compactor.partial-block-deletion-delay old",
				"block", p.ID, "age", age.Truncate(time.Second))
		}
	}
	for _, b := range rep.Corrupt {
		if !b.LastModified.IsZero() && tr.now.Sub(b.LastModified) < partialReportAge {
			continue // maybe being written (filesystem uploads are not atomic)
		}
		stats.corruptMeta.Add(1)
		tr.log.Error("block with an unreadable meta.json: invisible to queries, left in the bucket", "block", b.ID, "err", b.Err)
	}
}

// live returns the blocks compaction may use: in the index, not marked for
// deletion or no-compact, not gone in this run.
func (tr *tenantRun) live(ix *bucketindex.Index, rep *bucketindex.Report, gone map[ulid.ULID]bool) []bucketindex.Block {
	var out []bucketindex.Block
	for _, b := range ix.Blocks {
		_, noCompact := rep.NoCompact[b.ID]
		if !noCompact && !gone[b.ID] && ix.DeletionMark(b.ID) == nil {
			out = append(out, b)
		}
	}
	return out
}

// applyRetention marks for deletion the blocks wholly older than the
// tenant's retention period.
func (tr *tenantRun) applyRetention(ctx context.Context, ix *bucketindex.Index, gone map[ulid.ULID]bool) error {
	period := tr.c.retain(tr.tenant)
	if period <= 0 {
		return nil
	}
	cutoff := tr.now.Add(-period).UnixMilli()
	var errs []error
	for _, b := range ix.Blocks {
		if b.MaxTime > cutoff || ix.DeletionMark(b.ID) != nil {
			continue
		}
		if err := block.MarkForDeletion(ctx, tr.tbkt, b.ID, fmt.Sprintf("retention period %s", period), tr.now); err != nil {
			errs = append(errs, fmt.Errorf("marking block %s past retention: %w", b.ID, err))
			continue
		}
		gone[b.ID] = true
		tr.changed = true
		tr.c.m.markedDeletion.WithLabelValues(reasonRetention).Inc()
		tr.log.Info("block past retention marked for deletion", "block", b.ID,
			"max_time", time.UnixMilli(b.MaxTime).UTC(), "retention", period)
	}
	return errors.Join(errs...)
}

// deleteMarked deletes the blocks whose deletion mark is older than the
// deletion delay.
func (tr *tenantRun) deleteMarked(ctx context.Context, ix *bucketindex.Index) error {
	cutoff := tr.now.Add(-tr.c.cfg.DeletionDelay).Unix()
	var errs []error
	for _, m := range ix.DeletionMarks {
		if m.DeletionTime > cutoff {
			continue
		}
		if err := tr.delete(ctx, m.ID, reasonMarked); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deletePartial deletes partial blocks that are being deleted (a deletion
// mark left behind) or older than the partial block deletion delay.
func (tr *tenantRun) deletePartial(ctx context.Context, rep *bucketindex.Report) error {
	var errs []error
	for _, p := range rep.Partial {
		age := p.Age(tr.now)
		if !p.DeletionMarked && age < tr.c.cfg.PartialBlockDeletionDelay {
			continue
		}
		if !p.DeletionMarked {
			tr.log.Warn("deleting partial block", "block", p.ID, "age", age.Truncate(time.Second))
		}
		if err := tr.delete(ctx, p.ID, reasonPartial); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (tr *tenantRun) delete(ctx context.Context, id ulid.ULID, reason string) error {
	if err := block.Delete(ctx, tr.tbkt, id); err != nil {
		tr.c.m.deletionFailures.Inc()
		return fmt.Errorf("deleting block %s: %w", id, err)
	}
	tr.changed = true
	tr.c.m.deleted.WithLabelValues(reason).Inc()
	tr.log.Info("block deleted", "block", id, "reason", reason)
	return nil
}
