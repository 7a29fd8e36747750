package storegateway

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
)

// How a block's series are read: seriesPerBatch at a time (index lookups
// and their chunks in batched range reads), while the batch before waits
// to be merged, so that a request holds about two batches per block.
// Responses are cut at maxSeriesPerMessage or maxBytesPerMessage.
const (
	seriesPerBatch      = 1024
	maxSeriesPerMessage = 1024
	maxBytesPerMessage  = 1 << 20
)

// Series streams the series of the named blocks that match the request
// and have a chunk in [start_ms, end_ms], sorted by labels, each once with
// the chunks of every block sorted by time; the last message names the queried blocks and
// the failed ones with their errors (a damaged block is DataLoss).
func (g *StoreGateway) Series(req *storepb.SeriesRequest, stream grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	start := time.Now()
	defer func() { g.m.requestTime.WithLabelValues("Series").Observe(time.Since(start).Seconds()) }()
	if err := g.series(stream.Context(), req, stream.Send); err != nil {
		return g.fail("Series", err)
	}
	return nil
}

// batch is a run of one block's series, sorted by labels, or the error
// that ended the block's reading.
type batch struct {
	series []blockSeries
	err    error
}

type blockSeries struct {
	lset   labels.Labels
	chunks []blockChunk // sorted by mint
}

func (g *StoreGateway) series(ctx context.Context, req *storepb.SeriesRequest, send func(*storepb.SeriesResponse) error) error {
	r, err := parseRequest(req.GetTenant(), req.GetBlockIds(), req.GetMatchers())
	if err != nil {
		return err
	}
	mint, maxt, skip := req.GetStartMs(), req.GetEndMs(), req.GetSkipChunks()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	cursors := make([]*cursor, 0, len(r.ids))
	for _, id := range r.ids {
		ch := make(chan batch, 1)
		wg.Go(func() { g.readBlock(ctx, r, id, mint, maxt, skip, ch) })
		cursors = append(cursors, &cursor{id: id, ch: ch})
	}
	// Prime every cursor, then merge by labels. A block that fails drops
	// out of the merge and is reported on its own in the last message;
	// the other blocks are still served.
	h := make(cursorHeap, 0, len(cursors))
	for _, c := range cursors {
		if c.advance() {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	var (
		out   responseBuilder
		same  []*cursor
		count int64
		limit = req.GetLimit()
	)
	for h.Len() > 0 && (limit <= 0 || count < limit) {
		same = append(same[:0], heap.Pop(&h).(*cursor))
		for h.Len() > 0 && labels.Equal(h[0].at().lset, same[0].at().lset) {
			same = append(same, heap.Pop(&h).(*cursor))
		}
		s := same[0].at()
		cs := s.chunks
		if len(same) > 1 {
			cs = nil
			for _, c := range same {
				cs = append(cs, c.at().chunks...)
			}
			sortByTime(cs)
		}
		out.add(s.lset, cs)
		count++
		if out.full() {
			if err := out.send(send, nil, nil); err != nil {
				return err
			}
		}
		for _, c := range same {
			if c.advance() {
				heap.Push(&h, c)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	g.m.seriesSent.Add(float64(out.series))
	g.m.chunksSent.Add(float64(out.chunks))
	errs := make([]error, len(cursors))
	for i, c := range cursors {
		errs[i] = c.err
	}
	queried, failed, err := g.outcomes("Series", r, errs)
	if err != nil {
		return err
	}
	return out.send(send, queried, failed)
}

// blockFailed counts and logs block id's failure and returns it for the
// response.
func (g *StoreGateway) blockFailed(rpc, tenantID string, id ulid.ULID, err error) *storepb.BlockError {
	be := blockError(id, err)
	code := codes.Code(be.GetCode())
	g.m.blockErrors.WithLabelValues(rpc, code.String()).Inc()
	g.log.Warn("block failed; the request's other blocks are served", "rpc", rpc, "tenant", tenantID, "block", id, "code", code, "err", err)
	return be
}

// readBlock sends block id's matching series to out in batches, then
// closes it. A failure is the last batch.
func (g *StoreGateway) readBlock(ctx context.Context, r request, id ulid.ULID, mint, maxt int64, skip bool, out chan<- batch) {
	defer close(out)
	send := func(b batch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := g.enter(ctx); err != nil {
		send(batch{err: err})
		return
	}
	lb, err := g.acquire(ctx, r.tenant, id)
	var refs []storage.SeriesRef
	if err == nil {
		defer g.release(lb)
		refs, err = g.postingsFor(ctx, lb, r.ms)
	}
	g.leave()
	if err != nil {
		send(batch{err: err})
		return
	}
	for start := 0; start < len(refs); start += seriesPerBatch {
		if err := g.enter(ctx); err != nil {
			send(batch{err: err})
			return
		}
		b, err := g.readBatch(ctx, lb, refs[start:min(start+seriesPerBatch, len(refs))], mint, maxt, skip)
		g.leave()
		if err != nil {
			send(batch{err: fmt.Errorf("reading series of block %s: %w", id, err)})
			return
		}
		if len(b) > 0 && !send(batch{series: b}) {
			return
		}
	}
}

// readBatch reads the labels and chunks in [mint, maxt] of the series
// refs, skipping those without such chunks (as Prometheus' block querier
// does, for /series too).
func (g *StoreGateway) readBatch(ctx context.Context, lb *loadedBlock, refs []storage.SeriesRef, mint, maxt int64, skip bool) ([]blockSeries, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		b      labels.ScratchBuilder
		metas  []chunks.Meta
		out    = make([]blockSeries, 0, len(refs))
		slab   = make([]blockChunk, 0, len(refs))
		starts = make([]int, 0, len(refs))
	)
	err := lb.ir.eachSeries(ctx, refs, func(_ int, entry []byte) error {
		if err := lb.ir.decodeSeries(entry, &b, &metas); err != nil {
			return err
		}
		first := len(slab)
		for _, m := range metas {
			if m.MaxTime >= mint && m.MinTime <= maxt {
				slab = append(slab, blockChunk{mint: m.MinTime, maxt: m.MaxTime, ref: m.Ref})
				if skip {
					break // one is enough to know the series is in range
				}
			}
		}
		if len(slab) == first {
			return nil
		}
		if skip {
			slab = slab[:first]
		}
		out = append(out, blockSeries{lset: b.Labels()})
		starts = append(starts, first)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if skip {
		return out, nil
	}
	for i := range out {
		end := len(slab)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		out[i].chunks = slab[starts[i]:end:end]
	}
	if err := g.fetchChunks(ctx, lb, slab); err != nil {
		return nil, err
	}
	return out, nil
}

// sortByTime sorts the chunks of one series from several blocks by time.
// Identical chunks (the copies of one series in the blocks several
// ingesters cut) are all sent: the querier drops them in its one merge of
// every answer, ingesters' and store-gateways' alike.
func sortByTime(cs []blockChunk) {
	slices.SortFunc(cs, func(a, b blockChunk) int {
		if c := cmp.Compare(a.mint, b.mint); c != 0 {
			return c
		}
		return cmp.Compare(a.maxt, b.maxt)
	})
}

// cursor walks one block's batches.
type cursor struct {
	id  ulid.ULID
	ch  <-chan batch
	cur []blockSeries
	i   int
	err error // what ended the block's reading early
}

func (c *cursor) at() *blockSeries { return &c.cur[c.i] }

// advance moves to the next series; false when the block has no more or
// failed (then c.err says why).
func (c *cursor) advance() bool {
	if c.i+1 < len(c.cur) {
		c.i++
		return true
	}
	b, ok := <-c.ch
	if !ok {
		return false
	}
	if b.err != nil {
		c.err, c.cur = b.err, nil
		return false
	}
	c.cur, c.i = b.series, 0
	return true
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return labels.Compare(h[i].at().lset, h[j].at().lset) < 0 }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// responseBuilder builds SeriesResponse messages, reusing the messages of
// the batch before once it is sent.
type responseBuilder struct {
	resp           storepb.SeriesResponse
	bytes          int
	series, chunks int
}

func (b *responseBuilder) add(ls labels.Labels, cs []blockChunk) {
	n := len(b.resp.Series)
	if n < cap(b.resp.Series) {
		b.resp.Series = b.resp.Series[:n+1]
	} else {
		b.resp.Series = append(b.resp.Series, nil)
	}
	ss := b.resp.Series[n]
	if ss == nil {
		ss = &ingesterpb.StreamSeries{}
		b.resp.Series[n] = ss
	}
	ss.Labels = ss.Labels[:0]
	i := 0
	ls.Range(func(l labels.Label) {
		if i < cap(ss.Labels) {
			ss.Labels = ss.Labels[:i+1]
			if ss.Labels[i] == nil {
				ss.Labels[i] = &ingesterpb.Label{}
			}
		} else {
			ss.Labels = append(ss.Labels, &ingesterpb.Label{})
		}
		ss.Labels[i].Name, ss.Labels[i].Value = l.Name, l.Value
		b.bytes += len(l.Name) + len(l.Value) + 4
		i++
	})
	ss.Chunks = ss.Chunks[:0]
	for j, c := range cs {
		if j < cap(ss.Chunks) {
			ss.Chunks = ss.Chunks[:j+1]
			if ss.Chunks[j] == nil {
				ss.Chunks[j] = &ingesterpb.Chunk{}
			}
		} else {
			ss.Chunks = append(ss.Chunks, &ingesterpb.Chunk{})
		}
		pc := ss.Chunks[j]
		pc.MinTimeMs, pc.MaxTimeMs = c.mint, c.maxt
		pc.Encoding, pc.Data = uint32(c.raw[0]), c.raw[1:]
		b.bytes += len(c.raw) + 24
	}
	b.series++
	b.chunks += len(cs)
}

func (b *responseBuilder) full() bool {
	return len(b.resp.Series) >= maxSeriesPerMessage || b.bytes >= maxBytesPerMessage
}

// send sends the message built so far with queried and failed (nil but
// in the last).
func (b *responseBuilder) send(send func(*storepb.SeriesResponse) error, queried []string, failed []*storepb.BlockError) error {
	b.resp.QueriedBlocks, b.resp.BlockErrors = queried, failed
	err := send(&b.resp)
	for _, ss := range b.resp.Series {
		for _, c := range ss.Chunks {
			c.Data = nil // do not keep cached chunks alive
		}
	}
	b.resp.Series = b.resp.Series[:0]
	b.bytes = 0
	return err
}
