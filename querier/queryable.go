package querier

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// source is one place a tenant's series live: the ingesters, and the
// store-gateways of long-term storage. Both read their answers with
// seriesReader into *fetchedSeries (chunks as stored) and merge them with
// mergeReplicas, and queryable merges the sources' series with it too: a
// series is deduplicated in one way, whichever replicas, blocks and
// sources hold it. A source that holds nothing in [mint, maxt] returns
// storage.NoopQuerier().
type source interface {
	querier(tenantID string, mint, maxt int64) (storage.Querier, error)
}

// ingesterSource reads a tenant's recent series from the ingesters.
type ingesterSource struct{ f *fanout }

func (s ingesterSource) querier(tenantID string, mint, maxt int64) (storage.Querier, error) {
	return &ingesterQuerier{f: s.f, tenant: tenantID, mint: mint, maxt: maxt}, nil
}

// queryable is a tenant's storage.Queryable over every source.
func queryable(sources []source, tenantID string) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		qs := make([]storage.Querier, 0, len(sources))
		for _, s := range sources {
			q, err := s.querier(tenantID, mint, maxt)
			if err != nil {
				for _, q := range qs {
					_ = q.Close()
				}
				return nil, err
			}
			qs = append(qs, q)
		}
		if len(qs) == 1 {
			return qs[0], nil
		}
		return storage.NewMergeQuerier(qs, nil, mergeReplicas), nil
	})
}

// ingesterQuerier is one tenant's storage.Querier over the ingesters for
// [mint, maxt]. Select returns at once and fetches in the background, so
// that the PromQL engine's selectors fetch in parallel; the fetched chunks
// stay compressed until iterated. Close cancels fetches still running and
// waits for them.
type ingesterQuerier struct {
	f          *fanout
	tenant     string
	mint, maxt int64

	mu      sync.Mutex
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// Select fans the selector out to the ingesters: QueryStream, or Series
// when hints.Func is "series" (label sets only, as for /api/v1/series).
// The returned set is sorted whatever sortSeries says.
func (q *ingesterQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt, limit, labelsOnly := q.mint, q.maxt, 0, false
	if hints != nil {
		if hints.Start != 0 || hints.End != 0 {
			mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		}
		limit, labelsOnly = hints.Limit, hints.Func == "series"
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	pms := ingesterpb.FromMatchers(ms)
	ctx, cancel := context.WithCancel(ctx)
	q.mu.Lock()
	q.cancels = append(q.cancels, cancel)
	q.mu.Unlock()
	set := &lazySeriesSet{ready: make(chan struct{})}
	q.wg.Go(func() {
		defer close(set.ready)
		if labelsOnly {
			set.set = q.selectLabels(ctx, mint, maxt, limit, pms)
		} else {
			set.set = q.selectChunks(ctx, mint, maxt, limit, pms)
		}
	})
	return set
}

func (q *ingesterQuerier) selectChunks(ctx context.Context, mint, maxt int64, limit int, pms []*ingesterpb.LabelMatcher) storage.SeriesSet {
	req := &ingesterpb.QueryRequest{Tenant: q.tenant, StartMs: mint, EndMs: maxt, Matchers: pms, Limit: int64(limit)}
	answers, warns, err := fanOut(ctx, q.f, "QueryStream", func(ctx context.Context, c ingesterpb.IngesterClient, replica int) (streamAnswer, error) {
		return readQueryStream(ctx, c, req, int32(replica), mint, maxt)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, len(answers))
	var series, chunks, bytes int
	for i, a := range answers {
		sets[i] = &seriesSlice[fetchedSeries, *fetchedSeries]{series: a.series}
		series, chunks, bytes = series+len(a.series), chunks+a.chunks, bytes+a.bytes
	}
	q.f.m.seriesFetched.Observe(float64(series))
	q.f.m.chunksFetched.Observe(float64(chunks))
	q.f.m.bytesFetched.Observe(float64(bytes))
	return withWarnings(storage.NewMergeSeriesSet(sets, limit, mergeReplicas), warns)
}

func (q *ingesterQuerier) selectLabels(ctx context.Context, mint, maxt int64, limit int, pms []*ingesterpb.LabelMatcher) storage.SeriesSet {
	req := &ingesterpb.SeriesRequest{Tenant: q.tenant, StartMs: mint, EndMs: maxt, Matchers: pms, Limit: int64(limit)}
	answers, warns, err := fanOut(ctx, q.f, "Series", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) ([]labelsSeries, error) {
		return readSeries(ctx, c, req)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, len(answers))
	series := 0
	for i, a := range answers {
		sets[i] = &seriesSlice[labelsSeries, *labelsSeries]{series: a}
		series += len(a)
	}
	q.f.m.seriesFetched.Observe(float64(series))
	return withWarnings(storage.NewMergeSeriesSet(sets, limit, firstSeries), warns)
}

// LabelNames returns the sorted union of the ingesters' label names. With a
// limit each ingester sends its first hints.Limit names, which contain the
// first hints.Limit of the union.
func (q *ingesterQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	limit := labelLimit(hints)
	req := &ingesterpb.LabelNamesRequest{Tenant: q.tenant, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: int64(limit)}
	answers, warns, err := fanOut(ctx, q.f, "LabelNames", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) ([]string, error) {
		resp, err := c.LabelNames(ctx, req)
		return resp.GetNames(), err
	})
	if err != nil {
		return nil, nil, err
	}
	return ingesterpb.MergeStrings(answers, limit), warns, nil
}

// LabelValues returns the sorted union of the ingesters' values of name.
func (q *ingesterQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	limit := labelLimit(hints)
	req := &ingesterpb.LabelValuesRequest{Tenant: q.tenant, Name: name, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: int64(limit)}
	answers, warns, err := fanOut(ctx, q.f, "LabelValues", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) ([]string, error) {
		resp, err := c.LabelValues(ctx, req)
		return resp.GetValues(), err
	})
	if err != nil {
		return nil, nil, err
	}
	return ingesterpb.MergeStrings(answers, limit), warns, nil
}

// Close cancels the fetches still running and waits for them.
func (q *ingesterQuerier) Close() error {
	q.mu.Lock()
	for _, cancel := range q.cancels {
		cancel()
	}
	q.cancels = nil
	q.mu.Unlock()
	q.wg.Wait()
	return nil
}

func labelLimit(hints *storage.LabelHints) int {
	if hints == nil {
		return 0
	}
	return hints.Limit
}

// lazySeriesSet is a SeriesSet being fetched; every method waits for it.
type lazySeriesSet struct {
	ready chan struct{}
	set   storage.SeriesSet
}

func (s *lazySeriesSet) Next() bool                        { <-s.ready; return s.set.Next() }
func (s *lazySeriesSet) At() storage.Series                { return s.set.At() }
func (s *lazySeriesSet) Err() error                        { <-s.ready; return s.set.Err() }
func (s *lazySeriesSet) Warnings() annotations.Annotations { <-s.ready; return s.set.Warnings() }

// warnedSeriesSet adds the fan-out's warnings to a set's own.
type warnedSeriesSet struct {
	storage.SeriesSet
	warns annotations.Annotations
}

func withWarnings(s storage.SeriesSet, warns annotations.Annotations) storage.SeriesSet {
	if len(warns) == 0 {
		return s
	}
	return &warnedSeriesSet{SeriesSet: s, warns: warns}
}

func (s *warnedSeriesSet) Warnings() annotations.Annotations {
	var ws annotations.Annotations
	ws.Merge(s.warns)
	ws.Merge(s.SeriesSet.Warnings())
	return ws
}

// window restricts a source to part of the time line: with newerThan, only
// the part of a query's range after now-newerThan; with olderThan, only the
// part before now-olderThan. 0 is no restriction. A query wholly outside
// the window does not reach the source at all.
type window struct {
	s                    source
	now                  func() time.Time
	newerThan, olderThan time.Duration
}

func (w window) querier(tenantID string, mint, maxt int64) (storage.Querier, error) {
	now := w.now()
	if w.newerThan > 0 {
		mint = max(mint, now.Add(-w.newerThan).UnixMilli())
	}
	if w.olderThan > 0 {
		maxt = min(maxt, now.Add(-w.olderThan).UnixMilli())
	}
	if mint > maxt {
		return storage.NoopQuerier(), nil
	}
	return w.s.querier(tenantID, mint, maxt)
}
