package storeclient

import (
	"bytes"
	"cmp"
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

// Series is one series from long-term blocks, its chunks as stored.
type Series struct {
	Labels labels.Labels
	// Chunks are sorted by MinTime, then MaxTime; identical chunks (copies
	// of one block cut by several ingesters) appear once. Nil with
	// SeriesOptions.SkipChunks.
	Chunks []Chunk
}

// Chunk is one TSDB chunk exactly as a block stores it.
type Chunk struct {
	MinTime, MaxTime int64 // Unix ms, inclusive
	Encoding         chunkenc.Encoding
	// Data is never modified; it may be shared with other series' answers.
	Data []byte
}

// SeriesOptions adjust a Series call.
type SeriesOptions struct {
	// SkipChunks asks for label sets only (/api/v1/series): no chunk is read.
	SkipChunks bool
	// Limit is the most series returned, the first by labels; 0: all.
	Limit int
}

// Series returns the tenant's series that match ms and have a chunk in
// [mint, maxt] in the blocks overlapping it, sorted by labels, each once
// with the chunks of every block (those overlapping [mint, maxt]; their
// samples may reach outside it).
func (c *Client) Series(ctx context.Context, tenantID string, mint, maxt int64, ms []*labels.Matcher, opts SeriesOptions) ([]Series, error) {
	blocks, err := c.blocksFor(ctx, tenantID, mint, maxt)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	pms := ingesterpb.FromMatchers(ms)
	answers, err := fetch(ctx, c, "Series", tenantID, blocks, func(ctx context.Context, cl storepb.StoreGatewayClient, ids []string) ([]Series, []string, []*storepb.BlockError, error) {
		req := &storepb.SeriesRequest{Tenant: tenantID, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, SkipChunks: opts.SkipChunks, Limit: int64(opts.Limit)}
		return readSeries(ctx, cl, req)
	})
	if err != nil {
		return nil, err
	}
	out := mergeSeries(answers)
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out, nil
}

// readSeries reads one store-gateway's Series stream to the end: the
// series, the blocks queried and those that failed. Chunk
// bytes are kept as received (one allocation each, by the protobuf
// decoder), chunk headers in one slab per answer.
func readSeries(ctx context.Context, cl storepb.StoreGatewayClient, req *storepb.SeriesRequest) ([]Series, []string, []*storepb.BlockError, error) {
	stream, err := cl.Series(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		out     []Series
		slab    []Chunk
		starts  []int
		queried []string
		failed  []*storepb.BlockError
		b       labels.ScratchBuilder
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
			first := len(slab)
			for _, pc := range ss.GetChunks() {
				enc := chunkenc.Encoding(pc.GetEncoding())
				if pc.GetEncoding() > 255 || !chunkenc.IsValidEncoding(enc) {
					return nil, nil, nil, fmt.Errorf("store-gateway sent a chunk with unknown encoding %d for series %s", pc.GetEncoding(), protoLabels(&b, ss.GetLabels()))
				}
				slab = append(slab, Chunk{MinTime: pc.GetMinTimeMs(), MaxTime: pc.GetMaxTimeMs(), Encoding: enc, Data: pc.GetData()})
			}
			out = append(out, Series{Labels: protoLabels(&b, ss.GetLabels())})
			starts = append(starts, first)
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
		failed = append(failed, resp.GetBlockErrors()...)
	}
	if !req.GetSkipChunks() {
		for i := range out {
			end := len(slab)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			out[i].Chunks = slab[starts[i]:end:end]
		}
	}
	return out, queried, failed, nil
}

func protoLabels(b *labels.ScratchBuilder, pls []*ingesterpb.Label) labels.Labels {
	b.Reset()
	for _, l := range pls {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}

// mergeSeries merges the answers of several store-gateways (each sorted by
// labels) into one sorted list, each series once.
func mergeSeries(answers [][]Series) []Series {
	n := 0
	for _, a := range answers {
		n += len(a)
	}
	if len(answers) == 1 && slices.IsSortedFunc(answers[0], compareSeries) {
		return answers[0]
	}
	all := make([]Series, 0, n)
	for _, a := range answers {
		all = append(all, a...)
	}
	slices.SortStableFunc(all, compareSeries)
	out := all[:0]
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && labels.Equal(all[i].Labels, all[j].Labels) {
			j++
		}
		s := all[i]
		if j > i+1 && s.Chunks != nil {
			var cs []Chunk
			for _, x := range all[i:j] {
				cs = append(cs, x.Chunks...)
			}
			s.Chunks = dedupeChunks(cs)
		}
		out = append(out, s)
		i = j
	}
	return out
}

func compareSeries(a, b Series) int { return labels.Compare(a.Labels, b.Labels) }

// dedupeChunks sorts cs by time and drops chunks identical to another.
func dedupeChunks(cs []Chunk) []Chunk {
	slices.SortFunc(cs, func(a, b Chunk) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return cmp.Compare(a.MaxTime, b.MaxTime)
	})
	out := cs[:0]
	for _, c := range cs {
		dup := false
		for k := len(out) - 1; k >= 0 && out[k].MinTime == c.MinTime; k-- {
			if o := &out[k]; o.MaxTime == c.MaxTime && o.Encoding == c.Encoding && bytes.Equal(o.Data, c.Data) {
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

// MergeStrings returns the sorted union of lists, at most limit (0: all):
// how label names and values from several ingesters, store-gateways or
// blocks are combined.
func MergeStrings(lists [][]string, limit int) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
