package shipper

import (
	"context"

	"github.com/strata-metrics/strata/bucketindex"
)

// Indexing what was shipped. The compactor lists the bucket into each
// tenant's bucket index only every -compactor.cleanup-interval; until then
// a block just uploaded is found by queries only on the ingester that cut
// it, and by none if that ingester lost its disk. So each Sync adds the
// blocks it uploaded to the index itself (bucketindex.AddBlocks), and the
// next Sync reads the index once more to see them there: a concurrent
// writer (another replica's shipper, the compactor) may have overwritten
// the addition, which is then made again. A block counts as indexed once
// a read shows it in the index; a failure is logged, counted and tried
// again at the next Sync, without failing the Sync: the block is shipped,
// and the compactor's listing finds it anyway.

// index adds the blocks not yet seen in the bucket index to it, and calls
// the Indexed hook when it wrote the index. The caller holds syncMu.
func (s *Shipper) index(ctx context.Context) {
	if len(s.unindexed) == 0 || ctx.Err() != nil {
		return
	}
	blocks := make([]bucketindex.Block, 0, len(s.unindexed))
	for _, b := range s.unindexed {
		blocks = append(blocks, b)
	}
	added, err := bucketindex.AddBlocks(ctx, s.bktRoot, s.tenant, blocks, s.now())
	if err != nil {
		if ctx.Err() == nil {
			s.m.indexFailed()
			s.log.Warn("adding shipped blocks to the bucket index; trying again at the next round", "blocks", len(blocks), "err", err)
		}
		return
	}
	if added == 0 {
		// Every one is in the index as read just now.
		clear(s.unindexed)
		return
	}
	s.m.indexed(added)
	s.log.Debug("added shipped blocks to the bucket index", "blocks", added)
	if s.indexed != nil {
		s.indexed(ctx, s.tenant)
	}
}
