package ingester

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// Bounds of one streamed message: whichever is reached first closes it.
const (
	maxSeriesPerMessage = 128
	maxBytesPerMessage  = 1 << 20
)

// QueryStream sends the chunks of every series matching r, as they are stored
// (encoding and bytes; the open head chunk is a copy, so appends go on
// undisturbed), series sorted by labels, in messages of at most 128 series or
// about 1 MiB. Chunks are whole: they may hold samples outside [start, end],
// which the querier trims. A tenant without a TSDB gets an empty stream.
func (i *Ingester) QueryStream(r *ingesterpb.QueryRequest, stream grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error {
	ctx := stream.Context()
	ms, err := toMatchers(r.GetMatchers())
	if err != nil {
		return err
	}
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return grpcError(err)
	}
	defer i.release(u)
	if u == nil || r.GetEndMs() < r.GetStartMs() {
		return nil
	}
	q, err := u.db.ChunkQuerier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return grpcError(fmt.Errorf("open chunk querier: %w", err))
	}
	// Chunk bytes sent below alias the head's copies and the blocks' mmapped
	// files, which stay valid until the querier is closed; every Send
	// marshals its message before returning.
	defer q.Close()

	// DisableTrimming sends chunks whole, as stored: trimming would re-encode
	// every chunk that crosses start or end, and always the open head chunk
	// (whose indexed max time is unbounded), sample by sample.
	hints := &storage.SelectHints{Start: r.GetStartMs(), End: r.GetEndMs(), Limit: int(r.GetLimit()), DisableTrimming: true}
	set := q.Select(ctx, true, hints, selectable(ms)...)
	var (
		b     streamBatch
		it    chunks.Iterator
		count int64
	)
	for set.Next() {
		if r.GetLimit() > 0 && count >= r.GetLimit() {
			break
		}
		if err := i.checkStopping(); err != nil {
			return err
		}
		s := set.At()
		ss := b.next(s.Labels())
		it = s.Iterator(it)
		for it.Next() {
			meta := it.At()
			b.addChunk(ss, meta)
		}
		if err := it.Err(); err != nil {
			return grpcError(fmt.Errorf("read chunks of series %s: %w", s.Labels(), err))
		}
		if len(ss.Chunks) == 0 {
			b.unnext()
			continue
		}
		count++
		if b.full() {
			if err := b.send(stream); err != nil {
				return err
			}
		}
	}
	if err := set.Err(); err != nil {
		return grpcError(fmt.Errorf("select series: %w", err))
	}
	if len(b.resp.Series) > 0 {
		return b.send(stream)
	}
	return nil
}

// streamBatch builds QueryStreamResponse messages, reusing the messages,
// labels and chunks of the previous batch once it is sent.
type streamBatch struct {
	resp  ingesterpb.QueryStreamResponse
	bytes int
}

func (b *streamBatch) next(ls labels.Labels) *ingesterpb.StreamSeries {
	n := len(b.resp.Series)
	if n < cap(b.resp.Series) {
		b.resp.Series = b.resp.Series[:n+1]
		if b.resp.Series[n] == nil {
			b.resp.Series[n] = &ingesterpb.StreamSeries{}
		}
	} else {
		b.resp.Series = append(b.resp.Series, &ingesterpb.StreamSeries{})
	}
	ss := b.resp.Series[n]
	ss.Labels = fillLabels(ss.Labels, ls)
	ss.Chunks = ss.Chunks[:0]
	b.bytes += labelsBytes(ls)
	return ss
}

// unnext drops the series just added by next (it had no chunks).
func (b *streamBatch) unnext() {
	n := len(b.resp.Series) - 1
	b.bytes -= protoLabelsBytes(b.resp.Series[n].Labels)
	b.resp.Series = b.resp.Series[:n]
}

func (b *streamBatch) addChunk(ss *ingesterpb.StreamSeries, meta chunks.Meta) {
	n := len(ss.Chunks)
	if n < cap(ss.Chunks) {
		ss.Chunks = ss.Chunks[:n+1]
		if ss.Chunks[n] == nil {
			ss.Chunks[n] = &ingesterpb.Chunk{}
		}
	} else {
		ss.Chunks = append(ss.Chunks, &ingesterpb.Chunk{})
	}
	c := ss.Chunks[n]
	c.MinTimeMs, c.MaxTimeMs = meta.MinTime, meta.MaxTime
	c.Encoding = uint32(meta.Chunk.Encoding())
	c.Data = meta.Chunk.Bytes()
	b.bytes += len(c.Data) + 24
}

func (b *streamBatch) full() bool {
	return len(b.resp.Series) >= maxSeriesPerMessage || b.bytes >= maxBytesPerMessage
}

func (b *streamBatch) send(stream grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error {
	err := stream.Send(&b.resp)
	for _, ss := range b.resp.Series {
		for _, c := range ss.Chunks {
			c.Data = nil // do not keep chunk bytes alive past the querier
		}
	}
	b.resp.Series = b.resp.Series[:0]
	b.bytes = 0
	return err
}

// fillLabels writes ls into dst, reusing its Label messages.
func fillLabels(dst []*ingesterpb.Label, ls labels.Labels) []*ingesterpb.Label {
	n := 0
	ls.Range(func(l labels.Label) {
		if n < cap(dst) {
			dst = dst[:n+1]
			if dst[n] == nil {
				dst[n] = &ingesterpb.Label{}
			}
		} else {
			dst = append(dst, &ingesterpb.Label{})
		}
		dst[n].Name, dst[n].Value = l.Name, l.Value
		n++
	})
	return dst[:n]
}

func labelsBytes(ls labels.Labels) int {
	n := 0
	ls.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) + 4 })
	return n
}

func protoLabelsBytes(ls []*ingesterpb.Label) int {
	n := 0
	for _, l := range ls {
		n += len(l.Name) + len(l.Value) + 4
	}
	return n
}

// Series sends the label sets of the series matching r, sorted, without
// reading any chunk.
func (i *Ingester) Series(r *ingesterpb.SeriesRequest, stream grpc.ServerStreamingServer[ingesterpb.SeriesResponse]) error {
	ctx := stream.Context()
	ms, err := toMatchers(r.GetMatchers())
	if err != nil {
		return err
	}
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return grpcError(err)
	}
	defer i.release(u)
	if u == nil || r.GetEndMs() < r.GetStartMs() {
		return nil
	}
	q, err := u.db.Querier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return grpcError(fmt.Errorf("open querier: %w", err))
	}
	defer q.Close()

	// Func "series" makes the TSDB skip chunks: labels come from the index.
	hints := &storage.SelectHints{Start: r.GetStartMs(), End: r.GetEndMs(), Limit: int(r.GetLimit()), Func: "series"}
	set := q.Select(ctx, true, hints, selectable(ms)...)
	var (
		resp  ingesterpb.SeriesResponse
		bytes int
		count int64
	)
	for set.Next() {
		if r.GetLimit() > 0 && count >= r.GetLimit() {
			break
		}
		if err := i.checkStopping(); err != nil {
			return err
		}
		ls := set.At().Labels()
		resp.Series = append(resp.Series, &ingesterpb.LabelSet{Labels: fillLabels(nil, ls)})
		bytes += labelsBytes(ls)
		count++
		if len(resp.Series) >= 8*maxSeriesPerMessage || bytes >= maxBytesPerMessage {
			if err := stream.Send(&resp); err != nil {
				return err
			}
			resp.Series, bytes = resp.Series[:0], 0
		}
	}
	if err := set.Err(); err != nil {
		return grpcError(fmt.Errorf("select series: %w", err))
	}
	if len(resp.Series) > 0 {
		return stream.Send(&resp)
	}
	return nil
}

// LabelNames returns the sorted label names of the series matching r (of all
// series without matchers), at most r.limit of them.
func (i *Ingester) LabelNames(ctx context.Context, r *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	var names []string
	err := i.withQuerier(ctx, r.GetTenant(), r.GetStartMs(), r.GetEndMs(), r.GetMatchers(), func(q storage.Querier, ms []*labels.Matcher) error {
		var err error
		names, _, err = q.LabelNames(ctx, nil, ms...) // sorted; cut below, as LabelValues

		if err != nil {
			return fmt.Errorf("label names: %w", err)
		}
		names = cloneLimit(names, r.GetLimit())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ingesterpb.LabelNamesResponse{Names: names}, nil
}

// LabelValues returns the sorted values of label r.name among the series
// matching r, at most r.limit of them.
func (i *Ingester) LabelValues(ctx context.Context, r *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	var values []string
	err := i.withQuerier(ctx, r.GetTenant(), r.GetStartMs(), r.GetEndMs(), r.GetMatchers(), func(q storage.Querier, ms []*labels.Matcher) error {
		var err error
		// No limit hint: the head cuts its values to the limit before it
		// sorts them (v0.315.1), which would answer an arbitrary subset; the
		// querier merging replicas needs each one's sorted first values.
		values, _, err = q.LabelValues(ctx, r.GetName(), nil, ms...)
		if err != nil {
			return fmt.Errorf("label values of %q: %w", r.GetName(), err)
		}
		values = cloneLimit(values, r.GetLimit())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ingesterpb.LabelValuesResponse{Values: values}, nil
}

// withQuerier runs fn over a querier of tenant's TSDB for [start, end]; a
// tenant without a TSDB or an empty range runs nothing.
func (i *Ingester) withQuerier(ctx context.Context, tenantID string, start, end int64, pms []*ingesterpb.LabelMatcher, fn func(storage.Querier, []*labels.Matcher) error) error {
	ms, err := toMatchers(pms)
	if err != nil {
		return err
	}
	u, err := i.acquire(ctx, tenantID, false)
	if err != nil {
		return grpcError(err)
	}
	defer i.release(u)
	if u == nil || end < start {
		return nil
	}
	q, err := u.db.Querier(start, end)
	if err != nil {
		return grpcError(fmt.Errorf("open querier: %w", err))
	}
	defer q.Close()
	if err := fn(q, ms); err != nil {
		return grpcError(err)
	}
	return nil
}

// cloneLimit cuts ss to limit (0: no limit) and copies its strings, which
// belong to the querier (block indexes are mmapped) and the response outlives it.
func cloneLimit(ss []string, limit int64) []string {
	if limit > 0 && int64(len(ss)) > limit {
		ss = ss[:limit]
	}
	out := make([]string, len(ss))
	for k, s := range ss {
		out[k] = strings.Clone(s)
	}
	return out
}

// QueryExemplars returns the exemplars in [start, end] of the series matching
// any of r's matcher sets.
func (i *Ingester) QueryExemplars(ctx context.Context, r *ingesterpb.ExemplarsRequest) (*ingesterpb.ExemplarsResponse, error) {
	sets := make([][]*labels.Matcher, 0, len(r.GetMatcherSets()))
	for _, s := range r.GetMatcherSets() {
		ms, err := toMatchers(s.GetMatchers())
		if err != nil {
			return nil, err
		}
		sets = append(sets, ms)
	}
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return nil, grpcError(err)
	}
	defer i.release(u)
	resp := &ingesterpb.ExemplarsResponse{}
	if u == nil || len(sets) == 0 || r.GetEndMs() < r.GetStartMs() {
		return resp, nil
	}
	eq, err := u.db.ExemplarQuerier(ctx)
	if err != nil {
		return nil, grpcError(fmt.Errorf("open exemplar querier: %w", err))
	}
	res, err := eq.Select(r.GetStartMs(), r.GetEndMs(), sets...)
	if err != nil {
		return nil, grpcError(fmt.Errorf("select exemplars: %w", err))
	}
	// The strings are the head's and the exemplar storage's own, never
	// modified: no copy needed.
	for _, qr := range res {
		es := &ingesterpb.ExemplarSeries{Labels: fillLabels(nil, qr.SeriesLabels)}
		for _, e := range qr.Exemplars {
			es.Exemplars = append(es.Exemplars, &ingesterpb.Exemplar{
				Labels:    fillLabels(nil, e.Labels),
				Value:     e.Value,
				Timestamp: e.Ts,
			})
		}
		resp.Series = append(resp.Series, es)
	}
	return resp, nil
}

// checkStopping fails a long stream once shutdown has started.
func (i *Ingester) checkStopping() error {
	select {
	case <-i.stopping:
		return grpcError(errUnavailable{stateStopping})
	default:
		return nil
	}
}

// selectable returns ms, or a matcher of every series when ms is empty
// (Select needs one; LabelNames and LabelValues are faster without).
func selectable(ms []*labels.Matcher) []*labels.Matcher {
	if len(ms) == 0 {
		return []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "", "")}
	}
	return ms
}

// toMatchers converts a request's matchers; a bad one is the sender's
// fault.
func toMatchers(pms []*ingesterpb.LabelMatcher) ([]*labels.Matcher, error) {
	ms, err := ingesterpb.ToMatchers(pms)
	if err != nil {
		return nil, statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, 0, err.Error())
	}
	return ms, nil
}
