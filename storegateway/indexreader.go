package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/errgroup"
)

// How postings lists and series entries are read from the bucket. Ranges
// of one request closer than indexMaxGap are read with one range request
// (the bytes between them read and dropped), up to indexMaxRange bytes per
// request. A series entry's length is only known once its first bytes are
// read: its range ends at the next wanted series or seriesEstimate bytes
// after its start, whichever is first; a longer entry is read again whole.
const (
	indexMaxGap       = 64 << 10
	indexMaxRange     = 16 << 20
	seriesEstimate    = 4 << 10
	seriesByteAlign   = 16 // a v2 series reference is its offset / 16
	indexRangeFetches = 4
)

// blockIndex reads a block's index through its index-header: label names
// and values and where postings lists are from the header, postings lists
// and series entries by range reads of the index object. It is a
// tsdb.IndexReader for Prometheus' PostingsForMatchers.
type blockIndex struct {
	h     *indexHeader
	bkt   objstore.BucketReader // the tenant's
	name  string                // the index object, relative to bkt
	m     *metrics
	key   blockKey
	cache *lru[seriesKey, []byte] // shared by every block
	dec   index.Decoder
}

// seriesKey names one series entry of one block.
type seriesKey struct {
	block blockKey
	ref   storage.SeriesRef
}

var _ tsdb.IndexReader = (*blockIndex)(nil)

func newBlockIndex(h *indexHeader, bkt objstore.BucketReader, name string, m *metrics, key blockKey, cache *lru[seriesKey, []byte]) *blockIndex {
	bi := &blockIndex{h: h, bkt: bkt, name: name, m: m, key: key, cache: cache}
	bi.dec = index.Decoder{
		LookupSymbol:   func(_ context.Context, o uint32) (string, error) { return h.lookupSymbol(o) },
		DecodePostings: index.DecodePostingsRaw,
	}
	return bi
}

// readRange reads length bytes of the index from off, counted under what
// (header, postings, series).
func (bi *blockIndex) readRange(ctx context.Context, what string, off, length int64) (io.ReadCloser, error) {
	return readIndexRange(ctx, bi.bkt, bi.name, bi.m, what, off, length)
}

func readIndexRange(ctx context.Context, bkt objstore.BucketReader, name string, m *metrics, what string, off, length int64) (io.ReadCloser, error) {
	m.indexRanges.WithLabelValues(what).Inc()
	r, err := bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, fmt.Errorf("reading %d bytes of %s at %d: %w", length, path.Base(name), off, err)
	}
	return &countingReader{r, m, what}, nil
}

// countingReader counts what it reads as bytes fetched from the index.
type countingReader struct {
	io.ReadCloser
	m    *metrics
	what string
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.m.indexBytes.WithLabelValues(c.what).Add(float64(n))
	c.m.bucketBytes.WithLabelValues("index").Add(float64(n))
	return n, err
}

// byteRange is [start, end) of the index.
type byteRange struct{ start, end int64 }

// readRanges reads rs (sorted by start, not overlapping) with as few range
// requests as indexMaxGap and indexMaxRange allow, calling f with each
// range's bytes (fewer when the object ends first). f may run
// concurrently for different ranges.
func (bi *blockIndex) readRanges(ctx context.Context, what string, rs []byteRange, f func(i int, b []byte) error) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(indexRangeFetches)
	for start := 0; start < len(rs); {
		end := start + 1
		for end < len(rs) && rs[end].start-rs[end-1].end <= indexMaxGap && rs[end].end-rs[start].start <= indexMaxRange {
			end++
		}
		first, last := start, end
		eg.Go(func() error {
			from, to := rs[first].start, rs[last-1].end
			r, err := bi.readRange(ctx, what, from, to-from)
			if err != nil {
				return err
			}
			defer r.Close()
			buf := make([]byte, to-from)
			n, err := io.ReadFull(r, buf)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("reading %d bytes of index at %d: %w", to-from, from, err)
			}
			buf = buf[:n]
			for i := first; i < last; i++ {
				s, e := min(rs[i].start-from, int64(n)), min(rs[i].end-from, int64(n))
				if err := f(i, buf[s:e:e]); err != nil {
					return err
				}
			}
			return nil
		})
		start = end
	}
	return eg.Wait()
}

// postings reads the postings lists of entries, which are of one label
// name in value order, as lookup and scan return them: in index order
// too (scan checks it).
func (bi *blockIndex) postings(ctx context.Context, entries []postingsEntry) ([]index.Postings, error) {
	rs := make([]byteRange, len(entries))
	for i, e := range entries {
		rs[i] = byteRange{e.start, e.end}
	}
	out := make([]index.Postings, len(entries))
	err := bi.readRanges(ctx, "postings", rs, func(i int, b []byte) error {
		d := encoding.NewDecbufAt(byteSlice(b), 0, castagnoli)
		_, p, err := index.DecodePostingsRaw(d)
		if err != nil {
			return &dataLossError{fmt.Errorf("postings list of value %q at %d of the index: %w", entries[i].value, entries[i].start, err)}
		}
		out[i] = p
		return nil
	})
	return out, err
}

func (bi *blockIndex) postingsOf(ctx context.Context, name string, entries []postingsEntry, err error) index.Postings {
	if err != nil {
		return index.ErrPostings(&dataLossError{fmt.Errorf("index-header, label %q: %w", name, err)})
	}
	ps, err := bi.postings(ctx, entries)
	if err != nil {
		return index.ErrPostings(err)
	}
	return index.Merge(ctx, ps...)
}

// Postings returns the series with label name set to one of values.
func (bi *blockIndex) Postings(ctx context.Context, name string, values ...string) (index.Postings, error) {
	values = slices.Compact(slices.Sorted(slices.Values(values)))
	entries, err := bi.h.lookup(name, values)
	p := bi.postingsOf(ctx, name, entries, err)
	return p, p.Err()
}

// postingsPerValue returns the postings of each of values (sorted,
// unique) of label name, read together; an absent value has none.
func (bi *blockIndex) postingsPerValue(ctx context.Context, name string, values []string) ([]index.Postings, error) {
	entries, err := bi.h.lookup(name, values)
	if err != nil {
		return nil, &dataLossError{fmt.Errorf("index-header, label %q: %w", name, err)}
	}
	ps, err := bi.postings(ctx, entries)
	if err != nil {
		return nil, err
	}
	out := make([]index.Postings, len(values))
	j := 0
	for i, v := range values {
		if j < len(entries) && entries[j].value == v {
			out[i] = ps[j]
			j++
		} else {
			out[i] = index.EmptyPostings()
		}
	}
	return out, nil
}

// PostingsForLabelMatching returns the series with label name set to a
// value match accepts.
func (bi *blockIndex) PostingsForLabelMatching(ctx context.Context, name string, match func(string) bool) index.Postings {
	var entries []postingsEntry
	err := bi.h.scan(name, "", func(e postingsEntry) bool {
		if match(e.value) {
			entries = append(entries, e)
		}
		return ctx.Err() == nil
	})
	if err == nil && ctx.Err() != nil {
		return index.ErrPostings(ctx.Err())
	}
	return bi.postingsOf(ctx, name, entries, err)
}

// PostingsForAllLabelValues returns the series with label name.
func (bi *blockIndex) PostingsForAllLabelValues(ctx context.Context, name string) index.Postings {
	return bi.PostingsForLabelMatching(ctx, name, func(string) bool { return true })
}

// SortedPostings returns p: references are in label order already.
func (*blockIndex) SortedPostings(p index.Postings) index.Postings { return p }

// ShardedPostings keeps the series of p whose labels' stable hash is
// shardIndex modulo shardCount.
func (bi *blockIndex) ShardedPostings(p index.Postings, shardIndex, shardCount uint64) index.Postings {
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return index.ErrPostings(err)
	}
	var (
		b   labels.ScratchBuilder
		out []storage.SeriesRef
	)
	err = bi.eachSeries(context.Background(), refs, func(i int, entry []byte) error {
		if err := bi.dec.Series(entry, &b, nil); err != nil {
			return err
		}
		if labels.StableHash(b.Labels())%shardCount == shardIndex {
			out = append(out, refs[i])
		}
		return nil
	})
	if err != nil {
		return index.ErrPostings(err)
	}
	return index.NewListPostings(out)
}

// Symbols iterates the block's symbols.
func (bi *blockIndex) Symbols() index.StringIter { return bi.h.symbols.Iter() }

// SortedLabelValues returns the values of label name, sorted.
func (bi *blockIndex) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, error) {
	return bi.LabelValues(ctx, name, hints, matchers...)
}

// LabelValues returns the values of label name, sorted.
func (bi *blockIndex) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, matchers ...*labels.Matcher) ([]string, error) {
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	if len(matchers) > 0 {
		// As Prometheus' own index reader: the querier's labelValues
		// intersects postings itself.
		return nil, fmt.Errorf("label values of %q: matchers are not supported by the index reader", name)
	}
	vals, err := bi.h.values(name, limit)
	if err != nil {
		return nil, &dataLossError{fmt.Errorf("index-header, label %q: %w", name, err)}
	}
	return vals, nil
}

// LabelNames returns the block's label names, sorted; with matchers, those
// of the series they select.
func (bi *blockIndex) LabelNames(ctx context.Context, matchers ...*labels.Matcher) ([]string, error) {
	if len(matchers) == 0 {
		return slices.Clone(bi.h.sortedNames), nil
	}
	p, err := tsdb.PostingsForMatchers(ctx, bi, matchers...)
	if err != nil {
		return nil, err
	}
	return bi.LabelNamesFor(ctx, p)
}

// LabelNamesFor returns the label names of the series of postings, sorted.
func (bi *blockIndex) LabelNamesFor(ctx context.Context, postings index.Postings) ([]string, error) {
	refs, err := index.ExpandPostings(postings)
	if err != nil {
		return nil, err
	}
	seen := map[uint32]bool{}
	for start := 0; start < len(refs); start += seriesPerBatch {
		batch := refs[start:min(start+seriesPerBatch, len(refs))]
		err := bi.eachSeries(ctx, batch, func(_ int, entry []byte) error {
			offs, err := bi.dec.LabelNamesOffsetsFor(entry)
			for _, o := range offs {
				seen[o] = true
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(seen))
	for o := range seen {
		n, err := bi.h.lookupSymbol(o)
		if err != nil {
			return nil, &dataLossError{fmt.Errorf("label name symbol %d: %w", o, err)}
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Series reads one series' labels and chunk references.
func (bi *blockIndex) Series(ref storage.SeriesRef, b *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	return bi.eachSeries(context.Background(), []storage.SeriesRef{ref}, func(_ int, entry []byte) error {
		return bi.decodeSeries(entry, b, chks)
	})
}

// decodeSeries decodes a series entry from eachSeries.
func (bi *blockIndex) decodeSeries(entry []byte, b *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	if err := bi.dec.Series(entry, b, chks); err != nil {
		return &dataLossError{err}
	}
	return nil
}

// Close closes the index-header.
func (bi *blockIndex) Close() error { return bi.h.close() }

// eachSeries reads the series entries of refs (sorted, as postings are)
// from the series cache or by range and calls f with each one's content
// (checksum verified), in refs' order: f does not run concurrently.
func (bi *blockIndex) eachSeries(ctx context.Context, refs []storage.SeriesRef, f func(i int, entry []byte) error) error {
	if len(refs) == 0 {
		return nil
	}
	seriesEnd := int64(bi.h.toc.LabelIndices)
	entries := make([][]byte, len(refs))
	var (
		miss []int // indexes in refs
		rs   []byteRange
	)
	for i, ref := range refs {
		s := int64(ref) * seriesByteAlign
		if s < int64(bi.h.toc.Series) || s >= seriesEnd || (i > 0 && ref <= refs[i-1]) {
			return &dataLossError{fmt.Errorf("series %d: outside the series section or out of order", ref)}
		}
		if b, ok := bi.cache.get(seriesKey{bi.key, ref}); ok {
			entries[i] = b
			continue
		}
		e := min(s+seriesEstimate, seriesEnd)
		if i+1 < len(refs) {
			e = min(e, int64(refs[i+1])*seriesByteAlign)
		}
		miss = append(miss, i)
		rs = append(rs, byteRange{s, e})
	}
	err := bi.readRanges(ctx, "series", rs, func(j int, b []byte) error {
		entries[miss[j]] = b
		return nil
	})
	if err != nil {
		return err
	}
	for j, i := range miss {
		b, err := bi.verifySeries(ctx, refs[i], rs[j].start, entries[i], seriesEnd)
		if err != nil {
			return err
		}
		// Its own copy: a view would pin the whole range read.
		b = slices.Clone(b)
		bi.cache.add(seriesKey{bi.key, refs[i]}, b, int64(len(b)))
		entries[i] = b
	}
	for i, b := range entries {
		if err := f(i, b); err != nil {
			return err
		}
	}
	return nil
}

// verifySeries returns the content of series ref's entry, which starts
// b (read from start; read again whole when b ends first), its checksum
// verified.
func (bi *blockIndex) verifySeries(ctx context.Context, ref storage.SeriesRef, start int64, b []byte, seriesEnd int64) ([]byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 {
		// Every range holds 16 bytes or runs to the section's end.
		return nil, &dataLossError{fmt.Errorf("series %d: bad length field", ref)}
	}
	need := int64(n) + int64(l) + 4
	if need > seriesEnd-start {
		return nil, &dataLossError{fmt.Errorf("series %d: entry of %d bytes runs past the series section", ref, need)}
	}
	if need > int64(len(b)) {
		// Longer than estimated: read it again whole.
		r, err := bi.readRange(ctx, "series", start, need)
		if err != nil {
			return nil, err
		}
		b = make([]byte, need)
		_, err = io.ReadFull(r, b)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("reading series %d: %w", ref, err)
		}
	}
	d := encoding.NewDecbufUvarintAt(byteSlice(b[:need]), 0, castagnoli)
	if d.Err() != nil {
		return nil, &dataLossError{fmt.Errorf("series %d: %w", ref, d.Err())}
	}
	return d.Get(), nil
}
