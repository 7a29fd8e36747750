package querier

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/strata-metrics/strata/limits"
)

// Per-tenant query limits (limits.Limits, runtime overrides): query length
// and lookback, timeout, concurrent queries, and series fetched per query.
// The querier's own flags (-querier.timeout, -querier.max-concurrent,
// -querier.max-samples, -querier.max-query-length) bound every query of
// every tenant; the tenant's limits can only tighten them.
//
// Over max_concurrent_queries a query gets 429 at once rather than waiting:
// without a query-frontend there is no fair per-tenant queue, and waiting
// in the process-wide gate would let one tenant's backlog hold slots that
// another tenant's queries need. 429 tells Grafana and other clients that
// a retry will pass.

// Stable ids of query limit errors.
const (
	idMaxFetchedSeries     = "strata-max-fetched-series-per-query"
	idMaxFetchedSamples    = "strata-max-fetched-samples-per-query"
	idMaxQueryLength       = "strata-max-query-length"
	idMaxConcurrentQueries = "strata-max-concurrent-queries"
)

// tenantQueries counts each tenant's queries being evaluated.
type tenantQueries struct {
	mu      sync.Mutex
	running map[string]int
}

// acquire takes one of tenantID's max slots (0: unlimited) and reports
// whether it got one; release gives it back.
func (t *tenantQueries) acquire(tenantID string, max int) bool {
	if max <= 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running == nil {
		t.running = map[string]int{}
	}
	if t.running[tenantID] >= max {
		return false
	}
	t.running[tenantID]++
	return true
}

func (t *tenantQueries) release(tenantID string, max int) {
	if max <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[tenantID]--; t.running[tenantID] <= 0 {
		delete(t.running, tenantID)
	}
}

// limitQuery applies tenantID's query limits to a query over [start, end]
// (start = end for an instant query): it returns the context to evaluate
// in (with the tenant's timeout), the Queryable to evaluate over (cut at
// the tenant's lookback, counting fetched series), and done, which the
// caller must call once the query is evaluated. Without Deps.Limits it
// returns ctx, the tenant's Queryable and a no-op.
func (q *Querier) limitQuery(ctx context.Context, tenantID string, start, end time.Time) (context.Context, storage.Queryable, func(), *apiError) {
	if q.limits == nil {
		return ctx, q.Queryable(tenantID), func() {}, nil
	}
	lim := q.limits.For(tenantID)
	if max := lim.MaxQueryLength; max > 0 && end.Sub(start) > max {
		err := fmt.Errorf("the query time range exceeds tenant %q's limit (query length: %s, limit: %s); shorten it or raise the limit (-%s, override %q) [%s]",
			tenantID, end.Sub(start), max, limits.FlagMaxQueryLength, "max_query_length", idMaxQueryLength)
		return ctx, nil, nil, &apiError{typ: errorBadData, err: err}
	}
	maxConc := lim.MaxConcurrentQueries
	if !q.running.acquire(tenantID, maxConc) {
		err := fmt.Errorf("tenant %q already runs %d queries at once, its limit: retry later, or raise the limit (-%s, override %q) [%s]",
			tenantID, maxConc, limits.FlagMaxConcurrentQueries, "max_concurrent_queries", idMaxConcurrentQueries)
		return ctx, nil, nil, &apiError{typ: errorUnavailable, err: err, code: http.StatusTooManyRequests}
	}
	cancel := context.CancelFunc(func() {})
	if lim.QueryTimeout > 0 {
		// The engine's -querier.timeout still applies: the shorter wins.
		ctx, cancel = context.WithTimeout(ctx, lim.QueryTimeout)
	}
	done := func() {
		cancel()
		q.running.release(tenantID, maxConc)
	}
	var minT int64 = noLookback
	if lim.MaxQueryLookback > 0 {
		minT = timestamp.FromTime(q.now().Add(-lim.MaxQueryLookback))
	}
	if minT == noLookback && lim.MaxFetchedSeriesPerQuery <= 0 && lim.MaxFetchedSamplesPerQuery <= 0 {
		return ctx, q.Queryable(tenantID), done, nil
	}
	lq := &limitedQueryable{
		inner: q.Queryable(tenantID), tenant: tenantID, minT: minT,
		maxSeries: lim.MaxFetchedSeriesPerQuery, maxSamples: int64(lim.MaxFetchedSamplesPerQuery),
	}
	if lq.maxSamples > 0 {
		// Iterators cannot fail a query the engine is evaluating (it does
		// not always look at their errors): the first one over the limit
		// cancels the query with the limit as the cause, and limitErr
		// turns that into the query's error.
		var abort context.CancelCauseFunc
		ctx, abort = context.WithCancelCause(ctx)
		lq.abort = abort
		prev := done
		done = func() { abort(nil); prev() }
	}
	return ctx, lq, done, nil
}

// limitErr is the error of a query evaluated in a context of limitQuery:
// a fetched samples limit that was hit, or else err.
func limitErr(ctx context.Context, err error) error {
	var sle *SampleLimitError
	if cause := context.Cause(ctx); errors.As(cause, &sle) {
		return sle
	}
	return err
}

// noLookback is limitedQueryable.minT without a lookback limit.
const noLookback = int64(-1 << 63)

// limitedQueryable is a tenant's Queryable for one query: it reads nothing
// before minT and fails the query once its selectors returned more than
// maxSeries series (0: no limit) in all.
type limitedQueryable struct {
	inner      storage.Queryable
	tenant     string
	minT       int64
	maxSeries  int
	maxSamples int64
	abort      context.CancelCauseFunc // set when maxSamples > 0
	series     atomic.Int64            // returned by every Select of the query
	samples    atomic.Int64            // read through every series' iterators
}

func (lq *limitedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	if maxt < lq.minT {
		return storage.NoopQuerier(), nil // all of it is past the lookback
	}
	qr, err := lq.inner.Querier(max(mint, lq.minT), maxt)
	if err != nil || (lq.maxSeries <= 0 && lq.maxSamples <= 0) {
		return qr, err
	}
	return &limitedQuerier{Querier: qr, lq: lq}, nil
}

type limitedQuerier struct {
	storage.Querier
	lq *limitedQueryable
}

func (q *limitedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &countingSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), lq: q.lq}
}

// countingSeriesSet counts the series it yields into lq.fetched and ends
// with an error when they exceed lq.maxSeries.
type countingSeriesSet struct {
	storage.SeriesSet
	lq  *limitedQueryable
	err error
}

func (s *countingSeriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if s.lq.maxSeries <= 0 {
		return true
	}
	if n := s.lq.series.Add(1); n > int64(s.lq.maxSeries) {
		s.err = &SeriesLimitError{Tenant: s.lq.tenant, Limit: s.lq.maxSeries}
		return false
	}
	return true
}

func (s *countingSeriesSet) At() storage.Series {
	if s.lq.maxSamples <= 0 {
		return s.SeriesSet.At()
	}
	return &countingSeries{Series: s.SeriesSet.At(), lq: s.lq}
}

// countingSeries counts the samples read through its iterators.
type countingSeries struct {
	storage.Series
	lq *limitedQueryable
}

func (s *countingSeries) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	if c, ok := reuse.(*countingIterator); ok {
		reuse = c.Iterator
	}
	return &countingIterator{Iterator: s.Series.Iterator(reuse), lq: s.lq, lastT: math.MinInt64}
}

// countingIterator counts each sample read from it (At, AtHistogram,
// AtFloatHistogram) once, however often it is read; past the query's limit
// it cancels the query with the limit as the cause and ends. (Seek is the
// wrapped iterator's: go vet reserves the name for io.Seeker's signature,
// and what a Seek lands on is counted when it is read.)
type countingIterator struct {
	chunkenc.Iterator
	lq    *limitedQueryable
	lastT int64
	err   error
}

func (it *countingIterator) Next() chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	return it.Iterator.Next()
}

func (it *countingIterator) At() (int64, float64) {
	t, v := it.Iterator.At()
	it.count(t)
	return t, v
}

func (it *countingIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, h := it.Iterator.AtHistogram(h)
	it.count(t)
	return t, h
}

func (it *countingIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, fh := it.Iterator.AtFloatHistogram(fh)
	it.count(t)
	return t, fh
}

func (it *countingIterator) count(t int64) {
	if t <= it.lastT || it.err != nil {
		return
	}
	it.lastT = t
	if it.lq.samples.Add(1) > it.lq.maxSamples {
		it.err = &SampleLimitError{Tenant: it.lq.tenant, Limit: it.lq.maxSamples}
		it.lq.abort(it.err)
	}
}

func (it *countingIterator) Err() error {
	if it.err != nil {
		return it.err
	}
	return it.Iterator.Err()
}

// SampleLimitError fails a query that read more samples than its tenant's
// max_fetched_samples_per_query: 422, as an execution error.
type SampleLimitError struct {
	Tenant string
	Limit  int64
}

func (e *SampleLimitError) Error() string {
	return fmt.Sprintf("the query read more than %d samples, tenant %q's limit: query a shorter range, fewer series or a coarser step over less data, or raise the limit (-%s, override %q) [%s]",
		e.Limit, e.Tenant, limits.FlagMaxFetchedSamples, "max_fetched_samples_per_query", idMaxFetchedSamples)
}

func (s *countingSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}

// SeriesLimitError fails a query that fetched more series than its
// tenant's max_fetched_series_per_query: 422, as an execution error.
type SeriesLimitError struct {
	Tenant string
	Limit  int
}

func (e *SeriesLimitError) Error() string {
	return fmt.Sprintf("the query fetched more than %d series, tenant %q's limit: select fewer series (more specific label matchers) or raise the limit (-%s, override %q) [%s]",
		e.Limit, e.Tenant, limits.FlagMaxFetchedSeriesPerQuery, "max_fetched_series_per_query", idMaxFetchedSeries)
}
