package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
)

// streamAnswer is one ingester's answer to QueryStream.
type streamAnswer struct {
	series        []fetchedSeries // sorted by labels, unique
	chunks, bytes int
}

// readQueryStream reads one ingester's QueryStream to the end (see
// seriesReader).
func readQueryStream(ctx context.Context, c ingesterpb.IngesterClient, req *ingesterpb.QueryRequest, replica int32, mint, maxt int64) (streamAnswer, error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return streamAnswer{}, err
	}
	r := seriesReader{from: "ingester", replica: replica, mint: mint, maxt: maxt}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamAnswer{}, err
		}
		if err := r.add(resp.GetSeries()); err != nil {
			return streamAnswer{}, err
		}
	}
	return r.answer(), nil
}

// seriesReader turns the series of one answer, an ingester's or a
// store-gateway's (both send ingesterpb.StreamSeries), into fetchedSeries:
// the one decoding of chunks the querier has. It keeps the chunk bytes as
// received (one allocation each, made by the protobuf decoder) in one slab
// of chunk headers per answer, and drops chunks outside [mint, maxt] and
// series left without chunks.
type seriesReader struct {
	from       string // who sent the series, for errors
	replica    int32  // marks every chunk of the answer
	mint, maxt int64

	a        streamAnswer
	slab     []chunk
	starts   []int
	b        labels.ScratchBuilder
	unsorted bool
}

// add reads one message's series; they may reference the message's
// buffers (chunk data is kept, nothing else).
func (r *seriesReader) add(series []*ingesterpb.StreamSeries) error {
	for _, ss := range series {
		first := len(r.slab)
		for _, pc := range ss.GetChunks() {
			if pc.GetMaxTimeMs() < r.mint || pc.GetMinTimeMs() > r.maxt {
				continue
			}
			enc := chunkenc.Encoding(pc.GetEncoding())
			if pc.GetEncoding() >= numEncodings || !chunkenc.IsValidEncoding(enc) {
				return fmt.Errorf("%s sent a chunk with unknown encoding %d for series %s", r.from, pc.GetEncoding(), protoLabels(&r.b, ss.GetLabels()))
			}
			r.slab = append(r.slab, chunk{mint: pc.GetMinTimeMs(), maxt: pc.GetMaxTimeMs(), data: pc.GetData(), enc: enc, replica: r.replica})
			r.a.bytes += len(pc.GetData())
		}
		if len(r.slab) == first {
			continue
		}
		lset := protoLabels(&r.b, ss.GetLabels())
		if n := len(r.a.series); n > 0 && labels.Compare(r.a.series[n-1].lset, lset) >= 0 {
			r.unsorted = true
		}
		r.a.series = append(r.a.series, fetchedSeries{lset: lset, mint: r.mint, maxt: r.maxt})
		r.starts = append(r.starts, first)
	}
	return nil
}

// answer returns the series read, sorted by labels, each once, each with
// its chunks sorted and byte-identical copies dropped: a store-gateway
// sends each series once with the chunks of every block it read, so the
// copies of uncompacted replica blocks reach no merge of answers.
func (r *seriesReader) answer() streamAnswer {
	a, slab := r.a, r.slab
	a.chunks = len(slab)
	for i := range a.series {
		end := len(slab)
		if i+1 < len(r.starts) {
			end = r.starts[i+1]
		}
		cs := slab[r.starts[i]:end:end]
		if !slices.IsSortedFunc(cs, compareChunks) {
			slices.SortFunc(cs, compareChunks)
		}
		a.series[i].chunks = dedupeChunks(cs)
	}
	if r.unsorted {
		a.series = sortUniqueSeries(a.series)
	}
	return a
}

// readStoreSeries reads one store-gateway's Series stream to the end, with
// the reader of the ingesters' answers (seriesReader): the series, the
// blocks queried and those that failed.
func readStoreSeries(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest, mint, maxt int64) (streamAnswer, []string, []*storepb.BlockError, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return streamAnswer{}, nil, nil, err
	}
	r := seriesReader{from: "store-gateway", replica: storeReplica, mint: mint, maxt: maxt}
	var (
		queried []string
		failed  []*storepb.BlockError
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamAnswer{}, nil, nil, err
		}
		if err := r.add(resp.GetSeries()); err != nil {
			return streamAnswer{}, nil, nil, err
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
		failed = append(failed, resp.GetBlockErrors()...)
	}
	return r.answer(), queried, failed, nil
}

// readStoreLabels reads one store-gateway's Series stream asked with
// skip_chunks: label sets only.
func readStoreLabels(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest) ([]labelsSeries, []string, []*storepb.BlockError, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		r       labelsReader
		queried []string
		failed  []*storepb.BlockError
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, err
		}
		for _, ss := range resp.GetSeries() {
			r.add(ss.GetLabels())
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
		failed = append(failed, resp.GetBlockErrors()...)
	}
	return r.result(), queried, failed, nil
}

// sortUniqueSeries sorts series by labels and merges those sent twice.
func sortUniqueSeries(ss []fetchedSeries) []fetchedSeries {
	slices.SortStableFunc(ss, func(x, y fetchedSeries) int { return labels.Compare(x.lset, y.lset) })
	out := ss[:0]
	for i := range ss {
		if n := len(out); n > 0 && labels.Equal(out[n-1].lset, ss[i].lset) {
			out[n-1] = *mergeReplicas(&out[n-1], &ss[i]).(*fetchedSeries)
			continue
		}
		out = append(out, ss[i])
	}
	return out
}

// readSeries reads one ingester's Series stream to the end.
func readSeries(ctx context.Context, c ingesterpb.IngesterClient, req *ingesterpb.SeriesRequest) ([]labelsSeries, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, err
	}
	var r labelsReader
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, ls := range resp.GetSeries() {
			r.add(ls.GetLabels())
		}
	}
	return r.result(), nil
}

// labelsReader collects the label sets of one answer, an ingester's or a
// store-gateway's.
type labelsReader struct {
	out      []labelsSeries
	b        labels.ScratchBuilder
	unsorted bool
}

func (r *labelsReader) add(pls []*ingesterpb.Label) {
	lset := protoLabels(&r.b, pls)
	if n := len(r.out); n > 0 && labels.Compare(r.out[n-1].lset, lset) >= 0 {
		r.unsorted = true
	}
	r.out = append(r.out, labelsSeries{lset: lset})
}

// result returns the label sets read, sorted, each once.
func (r *labelsReader) result() []labelsSeries {
	if r.unsorted {
		slices.SortFunc(r.out, func(x, y labelsSeries) int { return labels.Compare(x.lset, y.lset) })
		r.out = slices.CompactFunc(r.out, func(x, y labelsSeries) bool { return labels.Equal(x.lset, y.lset) })
	}
	return r.out
}

func protoLabels(b *labels.ScratchBuilder, pls []*ingesterpb.Label) labels.Labels {
	b.Reset()
	for _, l := range pls {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}
