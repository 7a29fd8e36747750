package querier

import (
	"context"
	"errors"
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
	"github.com/strata-metrics/strata/promapi"
)

// Per-tenant query limits (limits.Limits, runtime overrides): query length
// and lookback, timeout, concurrent queries, and series fetched per query.
// The querier's own flags (-querier.timeout, -querier.max-concurrent,
// -querier.max-samples, -querier.max-query-length) bound every query of
// every tenant; the tenant's limits can only tighten them. They apply to
// PromQL queries (limitQuery) and to the metadata endpoints /series,
// /labels, /label/<name>/values and /query_exemplars (limitMeta).
//
// Every refusal names the limit, the tenant's value of it, its flag and
// its override (the YAML name in the runtime overrides file), ends with a
// stable id, and is counted in strata_querier_queries_rejected_total by
// tenant and that id. The status codes are Prometheus' and Mimir's: 400
// bad_data for a range over max_query_length (Mimir's query-frontend), 422
// execution for series and samples over their limits, 429 over
// max_concurrent_queries, 503 timeout for query_timeout (Prometheus'
// answer to a query timeout).

// Stable ids of query limit errors; they are also the reason label of
// strata_querier_queries_rejected_total.
const (
	idMaxFetchedSeries     = "strata-max-fetched-series-per-query"
	idMaxFetchedSamples    = "strata-max-fetched-samples-per-query"
	idMaxQueryLength       = "strata-max-query-length"
	idMaxConcurrentQueries = "strata-max-concurrent-queries"
	idQueryTimeout         = "strata-query-timeout"
)

// limitError is an error of a per-tenant query limit: it names the limit,
// the tenant's value of it and the override that changes it, and counts in
// strata_querier_queries_rejected_total under reason.
type limitError interface {
	error
	reason() string
}

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
//
// The length is checked on the range as asked, not cut at the lookback as
// for the metadata endpoints (limitMeta): PromQL evaluates every step of
// the range whatever data it finds.
func (q *Querier) limitQuery(ctx context.Context, tenantID string, start, end time.Time) (context.Context, storage.Queryable, func(), *promapi.Error) {
	if q.limits == nil {
		return ctx, q.Queryable(tenantID), func() {}, nil
	}
	lim := q.limits.For(tenantID)
	if max := lim.MaxQueryLength; max > 0 && end.Sub(start) > max {
		return ctx, nil, nil, promapi.BadData(&QueryLengthError{Tenant: tenantID, Length: end.Sub(start), Limit: max})
	}
	ctx, done, aerr := q.admit(ctx, tenantID, lim)
	if aerr != nil {
		return ctx, nil, nil, aerr
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

// tenantSlots is how many queries one tenant may run at once: its
// max_concurrent_queries, or by default, with multi-tenancy, half of
// -querier.max-concurrent (at least one), so that one tenant's dashboards
// can never take every slot and make a trivial query of another wait (one
// tenant held all 20 and another waited 70 s). Without tenants, 0: only
// the process-wide gate.
func (q *Querier) tenantSlots(lim *limits.Limits) int {
	if lim.MaxConcurrentQueries > 0 || (!q.tenants.MultitenancyEnabled && q.tenants.Auth == nil) {
		return lim.MaxConcurrentQueries
	}
	return max(1, q.cfg.MaxConcurrent/2)
}

// admit takes one of tenantID's concurrent query slots (a 429 when it has
// none left) and applies its timeout; the caller must call done when the
// request is answered.
//
// Over max_concurrent_queries a request gets 429 at once rather than
// waiting: without a query-frontend there is no fair per-tenant queue, and
// waiting in the process-wide gate would let one tenant's backlog hold
// slots that another tenant's queries need. 429 tells Grafana and other
// clients that a retry will pass.
func (q *Querier) admit(ctx context.Context, tenantID string, lim *limits.Limits) (context.Context, func(), *promapi.Error) {
	maxConc := q.tenantSlots(lim)
	if !q.running.acquire(tenantID, maxConc) {
		return ctx, nil, &promapi.Error{Type: promapi.ErrorUnavailable, Err: &ConcurrencyLimitError{Tenant: tenantID, Limit: maxConc}, Code: http.StatusTooManyRequests}
	}
	cancel := context.CancelFunc(func() {})
	if lim.QueryTimeout > 0 {
		// The engine's -querier.timeout still applies: the shorter wins.
		// The cause tells limitErr which of the two (or the client's
		// timeout parameter) fired.
		ctx, cancel = context.WithTimeoutCause(ctx, lim.QueryTimeout, &QueryTimeoutError{Tenant: tenantID, Limit: lim.QueryTimeout})
	}
	return ctx, func() {
		cancel()
		q.running.release(tenantID, maxConc)
	}, nil
}

// metaLimits are the limits applied to one request of a metadata
// endpoint: the context to answer in, the range to read, and the most
// series it may return (0: no limit).
type metaLimits struct {
	ctx        context.Context
	start, end time.Time
	maxSeries  int
	// empty: the whole range is past the lookback, the answer is empty.
	empty bool
	done  func()
}

// limitMeta applies tenantID's query limits to a request of /series,
// /labels, /label/<name>/values or /query_exemplars over [start, end] (an
// omitted bound is promapi.MinTime or MaxTime):
//   - max_query_lookback cuts the start, as for queries;
//   - max_query_length: an omitted start becomes end - the limit (now -
//     the limit without an end), as Mimir cuts a series query to its
//     max_labels_query_length, so that a request without a range still
//     works; a range given longer than the limit (an omitted end counting
//     as now) gets 400, as a query's;
//   - max_concurrent_queries and query_timeout as for queries (admit);
//   - max_fetched_series_per_query is returned for the caller to count.
//
// The caller must call done when the request is answered.
func (q *Querier) limitMeta(ctx context.Context, tenantID string, start, end time.Time) (metaLimits, *promapi.Error) {
	ml := metaLimits{ctx: ctx, start: start, end: end, done: func() {}}
	if q.limits == nil {
		return ml, nil
	}
	lim := q.limits.For(tenantID)
	now := q.now()
	if lb := lim.MaxQueryLookback; lb > 0 {
		oldest := now.Add(-lb)
		if end.Before(oldest) {
			ml.empty = true
		}
		if ml.start.Before(oldest) {
			ml.start = oldest
		}
	}
	if max := lim.MaxQueryLength; max > 0 && !ml.empty {
		until := end
		if end.Equal(promapi.MaxTime()) {
			until = now
		}
		switch {
		case start.Equal(promapi.MinTime()):
			if from := until.Add(-max); ml.start.Before(from) {
				ml.start = from
			}
		case until.Sub(ml.start) > max:
			return ml, promapi.BadData(&QueryLengthError{Tenant: tenantID, Length: until.Sub(ml.start), Limit: max})
		}
	}
	ctx, done, aerr := q.admit(ctx, tenantID, lim)
	if aerr != nil {
		return ml, aerr
	}
	ml.ctx, ml.done, ml.maxSeries = ctx, done, lim.MaxFetchedSeriesPerQuery
	return ml, nil
}

// countSeries returns a *SeriesLimitError when n series exceed the
// request's limit.
func (ml *metaLimits) countSeries(tenantID string, n int) error {
	if ml.maxSeries > 0 && n > ml.maxSeries {
		return &SeriesLimitError{Tenant: tenantID, Limit: ml.maxSeries}
	}
	return nil
}

// countRejected counts a request refused by a per-tenant query limit.
func (q *Querier) countRejected(tenantLabel string, err error) {
	var le limitError
	if errors.As(err, &le) {
		q.m.rejected.WithLabelValues(tenantLabel, le.reason()).Inc()
	}
}

// limitErr is the error of a query evaluated in a context of limitQuery
// or limitMeta: a fetched samples limit that was hit, the tenant's timeout
// when it fired, or else err.
func limitErr(ctx context.Context, err error) error {
	if err != nil {
		awaitDeadline(ctx) // fanout.go
	}
	cause := context.Cause(ctx)
	var sle *SampleLimitError
	if errors.As(cause, &sle) {
		return sle
	}
	var qte *QueryTimeoutError
	if err != nil && errors.As(cause, &qte) {
		return qte
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

func (s *countingSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}
