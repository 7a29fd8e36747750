package querier

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// chunk is one compressed chunk as an ingester or a block stores it. data is never
// modified; samples are decoded only while a query iterates.
type chunk struct {
	mint, maxt int64
	data       []byte
	enc        chunkenc.Encoding
	replica    int32 // which answer (ingester) it came from; storeReplica for blocks
}

// fetchedSeries is one series' chunks, from one replica or merged from
// several; its iterator yields only samples in [mint, maxt].
type fetchedSeries struct {
	lset       labels.Labels
	chunks     []chunk // sorted by mint, then maxt
	mint, maxt int64
}

func (s *fetchedSeries) Labels() labels.Labels { return s.lset }

// Iterator returns an iterator over the samples, reusing it when it is one
// of ours.
func (s *fetchedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	ci, ok := it.(*chunksIterator)
	if !ok {
		ci = &chunksIterator{}
	}
	ci.reset(s.chunks, s.mint, s.maxt)
	return ci
}

func compareChunks(a, b chunk) int {
	if c := cmp.Compare(a.mint, b.mint); c != 0 {
		return c
	}
	if c := cmp.Compare(a.maxt, b.maxt); c != 0 {
		return c
	}
	return cmp.Compare(a.replica, b.replica)
}

// mergeReplicas is the storage.VerticalSeriesMergeFunc for copies of one
// series: from several ingesters, several blocks (replicas' copies, or a
// compacted block and its sources while both are listed) or both sources.
// It is the querier's one deduplication. Copies cut
// into identical chunks, the common case, cost one bytes.Equal per chunk
// and are iterated once; chunks that overlap without being identical are
// merged sample by sample, keeping one sample per timestamp.
func mergeReplicas(series ...storage.Series) storage.Series {
	n := 0
	for _, s := range series {
		fs, ok := s.(*fetchedSeries)
		if !ok {
			return storage.ChainedSeriesMerge(series...)
		}
		n += len(fs.chunks)
	}
	first := series[0].(*fetchedSeries)
	out := &fetchedSeries{lset: first.lset, chunks: make([]chunk, 0, n), mint: first.mint, maxt: first.maxt}
	for _, s := range series {
		fs := s.(*fetchedSeries)
		out.chunks = append(out.chunks, fs.chunks...)
		out.mint, out.maxt = min(out.mint, fs.mint), max(out.maxt, fs.maxt)
	}
	slices.SortFunc(out.chunks, compareChunks)
	out.chunks = dedupeChunks(out.chunks)
	return out
}

// dedupeChunks drops chunks identical to an earlier one; cs is sorted.
func dedupeChunks(cs []chunk) []chunk {
	if len(cs) < 2 {
		return cs
	}
	out := cs[:1]
	for _, c := range cs[1:] {
		dup := false
		for k := len(out) - 1; k >= 0 && out[k].mint == c.mint; k-- {
			o := &out[k]
			if o.maxt == c.maxt && o.enc == c.enc && bytes.Equal(o.data, c.data) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

// labelsSeries is a series without samples, from the Series RPC.
type labelsSeries struct{ lset labels.Labels }

func (s *labelsSeries) Labels() labels.Labels { return s.lset }
func (s *labelsSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return chunkenc.NewNopIterator()
}

// firstSeries merges copies of a labels-only series.
func firstSeries(series ...storage.Series) storage.Series { return series[0] }

// seriesSlice is a sorted storage.SeriesSet over a slice.
type seriesSlice[S any, P interface {
	*S
	storage.Series
}] struct {
	series []S
	i      int
}

func (s *seriesSlice[S, P]) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}
func (s *seriesSlice[S, P]) At() storage.Series                { return P(&s.series[s.i-1]) }
func (s *seriesSlice[S, P]) Err() error                        { return nil }
func (s *seriesSlice[S, P]) Warnings() annotations.Annotations { return nil }

// numEncodings bounds chunkenc.Encoding values, for per-encoding arrays.
const numEncodings = 8

// chunksIterator iterates over a series' chunks, sorted by mint. It walks
// them in groups: a group is a maximal run of chunks whose time ranges
// overlap. A group of one chunk (the common case once identical replica
// chunks are dropped) is decoded directly, reusing one decoder per
// encoding; a larger group is merged by a chain iterator that drops
// duplicate timestamps. Samples outside [mint, maxt] are skipped.
type chunksIterator struct {
	chunks     []chunk
	mint, maxt int64

	next     int               // first chunk not opened yet
	cur      chunkenc.Iterator // iterator of the open group; nil when none
	curType  chunkenc.ValueType
	groupEnd int64 // largest maxt in the open group
	// replica of the open group when it is one chunk, -1 when merged, -2
	// before the first group.
	groupReplica int32
	// fresh: the current sample starts a group that follows a group of
	// another replica, so its counter-reset hint (relative to a previous
	// sample the reader did not see) is reported as unknown, as
	// storage.ChainSampleIteratorFromIterators does between iterators.
	// Today's chunk iterators already report unknown for a chunk's first
	// sample (prometheus/prometheus#15346); this keeps the merge right
	// when they start trusting the chunk header.
	fresh bool
	done  bool
	err   error

	decoders [numEncodings]chunkenc.Chunk
	iters    [numEncodings]chunkenc.Iterator
	chain    chunkenc.Iterator
}

func (it *chunksIterator) reset(chunks []chunk, mint, maxt int64) {
	it.chunks, it.mint, it.maxt = chunks, mint, maxt
	it.next, it.cur, it.curType, it.groupEnd = 0, nil, chunkenc.ValNone, 0
	it.groupReplica, it.fresh, it.done, it.err = -2, false, false, nil
}

// openGroup opens the next group that has samples at or after t. It
// returns false when no group is left before maxt.
func (it *chunksIterator) openGroup(t int64) bool {
	for it.next < len(it.chunks) {
		i := it.next
		if it.chunks[i].mint > it.maxt {
			break
		}
		end := it.chunks[i].maxt
		j := i + 1
		for j < len(it.chunks) && it.chunks[j].mint <= end {
			end = max(end, it.chunks[j].maxt)
			j++
		}
		it.next = j
		if end < t {
			continue
		}
		prev := it.groupReplica
		if j == i+1 {
			it.cur = it.single(&it.chunks[i])
			it.groupReplica = it.chunks[i].replica
		} else {
			it.cur = it.merged(it.chunks[i:j])
			it.groupReplica = -1
		}
		if it.cur == nil {
			return false // it.err is set
		}
		it.groupEnd = end
		it.fresh = prev != -2 && (prev == -1 || prev != it.groupReplica)
		return true
	}
	it.next = len(it.chunks)
	return false
}

// single returns an iterator over one chunk, reusing this iterator's
// decoder and chunk iterator of the chunk's encoding.
func (it *chunksIterator) single(c *chunk) chunkenc.Iterator {
	d := it.decoders[c.enc]
	if d == nil {
		var err error
		if d, err = chunkenc.FromData(c.enc, c.data); err != nil {
			it.err = err
			return nil
		}
		it.decoders[c.enc] = d
	} else {
		d.Reset(c.data)
	}
	it.iters[c.enc] = d.Iterator(it.iters[c.enc])
	return it.iters[c.enc]
}

// merged returns an iterator over overlapping chunks, one sample per
// timestamp. Overlaps are rare (replicas that missed different samples,
// out-of-order data), so their decoders are not reused.
func (it *chunksIterator) merged(cs []chunk) chunkenc.Iterator {
	iters := make([]chunkenc.Iterator, len(cs))
	for k := range cs {
		d, err := chunkenc.FromData(cs[k].enc, cs[k].data)
		if err != nil {
			it.err = err
			return nil
		}
		iters[k] = d.Iterator(nil)
	}
	it.chain = storage.ChainSampleIteratorFromIterators(it.chain, iters)
	return it.chain
}

// advance opens groups until one has a sample at or after t.
func (it *chunksIterator) advance(t int64) chunkenc.ValueType {
	for it.openGroup(t) {
		if vt := it.cur.Seek(t); vt != chunkenc.ValNone {
			return it.land(vt)
		}
		if err := it.cur.Err(); err != nil {
			it.err = err
			break
		}
	}
	return it.finish()
}

// land checks the sample the open group's iterator stopped at.
func (it *chunksIterator) land(vt chunkenc.ValueType) chunkenc.ValueType {
	if it.cur.AtT() > it.maxt {
		return it.finish()
	}
	it.curType = vt
	return vt
}

func (it *chunksIterator) finish() chunkenc.ValueType {
	it.cur, it.curType, it.done, it.next = nil, chunkenc.ValNone, true, len(it.chunks)
	return chunkenc.ValNone
}

func (it *chunksIterator) Next() chunkenc.ValueType {
	if it.done || it.err != nil {
		return chunkenc.ValNone
	}
	if it.cur != nil {
		if vt := it.cur.Next(); vt != chunkenc.ValNone {
			it.fresh = false
			return it.land(vt)
		}
		if err := it.cur.Err(); err != nil {
			it.err = err
			return it.finish()
		}
	}
	return it.advance(it.mint)
}

// millis is int64 under another name, only so that go vet's stdmethods
// check does not take chunkenc.Iterator's Seek for a malformed io.Seeker.
type millis = int64

func (it *chunksIterator) Seek(t millis) chunkenc.ValueType {
	if it.done || it.err != nil {
		return chunkenc.ValNone
	}
	t = max(t, it.mint)
	if it.cur != nil {
		if it.curType != chunkenc.ValNone && it.cur.AtT() >= t {
			return it.curType
		}
		if it.groupEnd >= t {
			if vt := it.cur.Seek(t); vt != chunkenc.ValNone {
				it.fresh = false
				return it.land(vt)
			}
			if err := it.cur.Err(); err != nil {
				it.err = err
				return it.finish()
			}
		}
	}
	return it.advance(t)
}

func (it *chunksIterator) At() (int64, float64) { return it.cur.At() }

func (it *chunksIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, h := it.cur.AtHistogram(h)
	if it.fresh && h.CounterResetHint != histogram.GaugeType {
		h.CounterResetHint = histogram.UnknownCounterReset
	}
	return t, h
}

func (it *chunksIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, fh := it.cur.AtFloatHistogram(fh)
	if it.fresh && fh.CounterResetHint != histogram.GaugeType {
		fh.CounterResetHint = histogram.UnknownCounterReset
	}
	return t, fh
}

func (it *chunksIterator) AtT() int64  { return it.cur.AtT() }
func (it *chunksIterator) AtST() int64 { return it.cur.AtST() }
func (it *chunksIterator) Err() error  { return it.err }
