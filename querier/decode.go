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
)

// streamAnswer is one ingester's answer to QueryStream.
type streamAnswer struct {
	series        []fetchedSeries // sorted by labels, unique
	chunks, bytes int
}

// readQueryStream reads one ingester's QueryStream to the end. It keeps the
// chunk bytes as received (one allocation each, made by the protobuf
// decoder) in one slab of chunk headers per answer, and drops chunks
// outside [mint, maxt].
func readQueryStream(ctx context.Context, c ingesterpb.IngesterClient, req *ingesterpb.QueryRequest, replica int32, mint, maxt int64) (streamAnswer, error) {
	stream, err := c.QueryStream(ctx, req)
	if err != nil {
		return streamAnswer{}, err
	}
	var (
		a      streamAnswer
		slab   []chunk
		starts []int
		b      labels.ScratchBuilder
		sorted = true
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return streamAnswer{}, err
		}
		for _, ss := range resp.GetSeries() {
			first := len(slab)
			for _, pc := range ss.GetChunks() {
				if pc.GetMaxTimeMs() < mint || pc.GetMinTimeMs() > maxt {
					continue
				}
				enc := chunkenc.Encoding(pc.GetEncoding())
				if pc.GetEncoding() >= numEncodings || !chunkenc.IsValidEncoding(enc) {
					return streamAnswer{}, fmt.Errorf("ingester sent a chunk with unknown encoding %d for series %s", pc.GetEncoding(), protoLabels(&b, ss.GetLabels()))
				}
				slab = append(slab, chunk{mint: pc.GetMinTimeMs(), maxt: pc.GetMaxTimeMs(), data: pc.GetData(), enc: enc, replica: replica})
				a.bytes += len(pc.GetData())
			}
			if len(slab) == first {
				continue
			}
			lset := protoLabels(&b, ss.GetLabels())
			if n := len(a.series); n > 0 && labels.Compare(a.series[n-1].lset, lset) >= 0 {
				sorted = false
			}
			a.series = append(a.series, fetchedSeries{lset: lset, mint: mint, maxt: maxt})
			starts = append(starts, first)
		}
	}
	a.chunks = len(slab)
	for i := range a.series {
		end := len(slab)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		cs := slab[starts[i]:end:end]
		if !slices.IsSortedFunc(cs, compareChunks) {
			slices.SortFunc(cs, compareChunks)
		}
		a.series[i].chunks = cs
	}
	if !sorted {
		a.series = sortUniqueSeries(a.series)
	}
	return a, nil
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
	var (
		out    []labelsSeries
		b      labels.ScratchBuilder
		sorted = true
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, ls := range resp.GetSeries() {
			lset := protoLabels(&b, ls.GetLabels())
			if n := len(out); n > 0 && labels.Compare(out[n-1].lset, lset) >= 0 {
				sorted = false
			}
			out = append(out, labelsSeries{lset: lset})
		}
	}
	if !sorted {
		slices.SortFunc(out, func(x, y labelsSeries) int { return labels.Compare(x.lset, y.lset) })
		out = slices.CompactFunc(out, func(x, y labelsSeries) bool { return labels.Equal(x.lset, y.lset) })
	}
	return out, nil
}

func protoLabels(b *labels.ScratchBuilder, pls []*ingesterpb.Label) labels.Labels {
	b.Reset()
	for _, l := range pls {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}
