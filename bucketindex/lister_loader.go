package bucketindex

import "context"

// BlockListerFunc is a BlockLister in one function.
type BlockListerFunc func(ctx context.Context, tenantID string, mint, maxt int64) ([]BlockRef, error)

// Blocks implements BlockLister.
func (f BlockListerFunc) Blocks(ctx context.Context, tenantID string, mint, maxt int64) ([]BlockRef, error) {
	return f(ctx, tenantID, mint, maxt)
}

// IndexLister is the BlockLister of production: the tenant's bucket index,
// kept by l (share one Loader between the querier and the store-gateway of
// a process). Blocks marked for deletion are left out once their mark is
// older than the loader's -blocks-storage.bucket-index.ignore-deletion-marks-delay.
func IndexLister(l *Loader) BlockLister {
	return BlockListerFunc(func(ctx context.Context, tenantID string, mint, maxt int64) ([]BlockRef, error) {
		bs, err := l.Blocks(ctx, tenantID, mint, maxt)
		if err != nil {
			return nil, err
		}
		out := make([]BlockRef, len(bs))
		for i, b := range bs {
			out[i] = BlockRef{ID: b.ID, MinTime: b.MinTime, MaxTime: b.MaxTime, Source: b.Source, Ingester: b.Ingester, CompactionLevel: b.CompactionLevel}
		}
		return out, nil
	})
}
