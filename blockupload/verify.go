package blockupload

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// download fetches the files of an upload from tbkt into dir (emptied
// first), checking each file's size against what was received, and writes
// the block's meta.json there for Prometheus' reader.
func download(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID, st *uploadState, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("emptying %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, block.ChunksDirname), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range st.Files {
		if err := downloadFile(ctx, tbkt, path.Join(id.String(), f.Path), filepath.Join(dir, filepath.FromSlash(f.Path)), f.Size); err != nil {
			return err
		}
	}
	m := st.Meta
	return block.WriteMetaFile(dir, &m)
}

func downloadFile(ctx context.Context, tbkt objstore.Bucket, src, dst string, size int64) error {
	r, err := tbkt.Get(ctx, src)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("downloading %s: %w", src, err)
	}
	if n != size {
		return refuse(ReasonCorrupt, http.StatusBadRequest, "%s has %d bytes in the bucket, %d were received: upload it again", src, n, size)
	}
	return nil
}

// verifyBlock reads the block in dir whole: the index opens, every series
// has labels, sorted and unique, the series come in label order, each
// series' chunks in time order without overlap, every chunk reference
// points into the chunk files, every sample lies within its chunk's and
// the block's time range with timestamps increasing, and the counts agree
// with meta.json's stats when it has them. It returns the samples read.
func verifyBlock(ctx context.Context, dir string, m *block.Meta) (samples uint64, err error) {
	corrupt := func(format string, args ...any) error {
		return refuse(ReasonCorrupt, http.StatusBadRequest, "block %s: "+format, append([]any{m.ULID}, args...)...)
	}
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, chunkenc.NewPool(), nil)
	if err != nil {
		return 0, corrupt("does not open (index or chunks corrupt): %v", err)
	}
	defer b.Close()
	ir, err := b.Index()
	if err != nil {
		return 0, corrupt("index: %v", err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		return 0, corrupt("chunks: %v", err)
	}
	defer cr.Close()
	allName, allValue := index.AllPostingsKey()
	p, err := ir.Postings(ctx, allName, allValue)
	if err != nil {
		return 0, corrupt("index postings: %v", err)
	}
	var (
		builder labels.ScratchBuilder
		chks    []chunks.Meta
		it      chunkenc.Iterator
		series  uint64
		prev    labels.Labels
		prevT   int64
	)
	for p.Next() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		series++
		if err := ir.Series(p.At(), &builder, &chks); err != nil {
			return 0, corrupt("index: series %d: %v", p.At(), err)
		}
		lset := builder.Labels()
		if lset.IsEmpty() {
			return 0, corrupt("index: series %d has no labels", p.At())
		}
		// The compactor's merge and the store-gateways' readers take the
		// index's order on trust: a block out of order would fail every
		// compaction of its group.
		if err := checkOrder(prev, lset, chks); err != nil {
			return 0, corrupt("%v", err)
		}
		prev = lset
		for _, c := range chks {
			if c.MinTime < m.MinTime || c.MaxTime >= m.MaxTime {
				return 0, corrupt("series %s: chunk [%d, %d] is outside the block's range [%d, %d)", lset, c.MinTime, c.MaxTime, m.MinTime, m.MaxTime)
			}
			chk, iterable, err := cr.ChunkOrIterable(c)
			if err != nil {
				return 0, corrupt("series %s: chunk reference %d: %v", lset, c.Ref, err)
			}
			if chk != nil {
				it = chk.Iterator(it)
			} else {
				it = iterable.Iterator(it)
			}
			var n int
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				t := it.AtT()
				if t < c.MinTime || t > c.MaxTime {
					return 0, corrupt("series %s: sample at %d outside its chunk's range [%d, %d]", lset, t, c.MinTime, c.MaxTime)
				}
				// Chunks do not overlap (checkOrder), so increasing within
				// each chunk is increasing within the series.
				if n > 0 && t <= prevT {
					return 0, corrupt("series %s: chunk reference %d: sample timestamps not increasing (%d after %d)", lset, c.Ref, t, prevT)
				}
				prevT = t
				n++
			}
			if err := it.Err(); err != nil {
				return 0, corrupt("series %s: chunk reference %d: %v", lset, c.Ref, err)
			}
			if n == 0 {
				return 0, corrupt("series %s: chunk reference %d holds no samples", lset, c.Ref)
			}
			samples += uint64(n)
		}
	}
	if err := p.Err(); err != nil {
		return 0, corrupt("index postings: %v", err)
	}
	if st := m.Stats; st.NumSamples != 0 && st.NumSamples != samples {
		return 0, corrupt("meta.json says %d samples, the chunks hold %d", st.NumSamples, samples)
	}
	if st := m.Stats; st.NumSeries != 0 && st.NumSeries != series {
		return 0, corrupt("meta.json says %d series, the index holds %d", st.NumSeries, series)
	}
	if samples == 0 {
		return 0, corrupt("holds no samples")
	}
	return samples, nil
}

// checkOrder checks what Prometheus' readers and compactor assume of a
// series of the index, lset, following prev (empty for the first): label
// names sorted and unique, lset after prev, and its chunks each with
// MinTime <= MaxTime, in time order and not overlapping.
func checkOrder(prev, lset labels.Labels, chks []chunks.Meta) error {
	var (
		last  string
		first = true
		err   error
	)
	lset.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case !first && l.Name == last:
			err = fmt.Errorf("series %s: label name %q appears twice", lset, l.Name)
		case !first && l.Name < last:
			err = fmt.Errorf("series %s: label names not sorted (%q after %q)", lset, l.Name, last)
		}
		first, last = false, l.Name
	})
	if err != nil {
		return err
	}
	if !prev.IsEmpty() && labels.Compare(prev, lset) >= 0 {
		return fmt.Errorf("index: series not sorted by labels (%s after %s)", lset, prev)
	}
	for i, c := range chks {
		if c.MinTime > c.MaxTime {
			return fmt.Errorf("series %s: chunk [%d, %d] ends before it starts", lset, c.MinTime, c.MaxTime)
		}
		if i > 0 && c.MinTime <= chks[i-1].MaxTime {
			return fmt.Errorf("series %s: chunk [%d, %d] does not start after the previous chunk [%d, %d] ends (chunks out of order or overlapping)",
				lset, c.MinTime, c.MaxTime, chks[i-1].MinTime, chks[i-1].MaxTime)
		}
	}
	return nil
}
