package compactor

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// verifyBlock reads every series and every sample of b, as a compaction
// does, and returns the first error (a panic of the decoder included). It
// runs only after a compaction failed, to find the block to blame.
func verifyBlock(ctx context.Context, b *tsdb.Block) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading block panicked: %v", r)
		}
	}()
	ir, err := b.Index()
	if err != nil {
		return fmt.Errorf("opening index: %w", err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		return fmt.Errorf("opening chunks: %w", err)
	}
	defer cr.Close()
	k, v := index.AllPostingsKey()
	p, err := ir.Postings(ctx, k, v)
	if err != nil {
		return fmt.Errorf("reading postings: %w", err)
	}
	var (
		builder labels.ScratchBuilder
		chks    []chunks.Meta
		it      chunkenc.Iterator
	)
	for p.Next() {
		if err := ir.Series(p.At(), &builder, &chks); err != nil {
			return fmt.Errorf("reading series %d: %w", p.At(), err)
		}
		for _, m := range chks {
			chk, iterable, err := cr.ChunkOrIterable(m)
			if err != nil {
				return fmt.Errorf("reading chunk %d of series %s: %w", m.Ref, builder.Labels(), err)
			}
			if chk != nil {
				it = chk.Iterator(it)
			} else {
				it = iterable.Iterator(it)
			}
			for it.Next() != chunkenc.ValNone {
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("decoding chunk %d of series %s: %w", m.Ref, builder.Labels(), err)
			}
		}
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("reading postings: %w", err)
	}
	return nil
}
