package querier

import (
	"context"
	"fmt"
	"time"

	"github.com/strata-metrics/strata/limits"
)

// The errors of the per-tenant query limits (limits.go). Each says which
// limit refused the request, the tenant's value of it, the flag (the
// default) and the override (the runtime overrides file) that change it,
// and ends with the stable id that is also its reason in
// strata_querier_queries_rejected_total.

// QueryLengthError refuses a request whose time range is longer than its
// tenant's max_query_length: 400, bad_data.
type QueryLengthError struct {
	Tenant        string
	Length, Limit time.Duration
}

func (e *QueryLengthError) Error() string {
	return fmt.Sprintf("the query time range exceeds tenant %q's limit (query length: %s, limit: %s); shorten it or raise the limit (-%s, override %q) [%s]",
		e.Tenant, e.Length, e.Limit, limits.FlagMaxQueryLength, "max_query_length", idMaxQueryLength)
}

func (e *QueryLengthError) reason() string { return idMaxQueryLength }

// ConcurrencyLimitError refuses a request of a tenant that already runs
// max_concurrent_queries: 429.
type ConcurrencyLimitError struct {
	Tenant string
	Limit  int
}

func (e *ConcurrencyLimitError) Error() string {
	return fmt.Sprintf("tenant %q already runs %d queries at once, its limit: retry later, or raise the limit (-%s, override %q) [%s]",
		e.Tenant, e.Limit, limits.FlagMaxConcurrentQueries, "max_concurrent_queries", idMaxConcurrentQueries)
}

func (e *ConcurrencyLimitError) reason() string { return idMaxConcurrentQueries }

// QueryTimeoutError ends a request that ran longer than its tenant's
// query_timeout: 503, timeout, as Prometheus answers a query that timed
// out. It is a context.DeadlineExceeded under errors.Is.
type QueryTimeoutError struct {
	Tenant string
	Limit  time.Duration
}

func (e *QueryTimeoutError) Error() string {
	return fmt.Sprintf("query timed out after %s, tenant %q's limit: query a shorter range or fewer series, or raise the limit (-%s, override %q) [%s]",
		e.Limit, e.Tenant, limits.FlagQueryTimeout, "query_timeout", idQueryTimeout)
}

func (e *QueryTimeoutError) reason() string { return idQueryTimeout }

// Unwrap makes the error a context.DeadlineExceeded for code that only
// knows that one.
func (e *QueryTimeoutError) Unwrap() error { return context.DeadlineExceeded }

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

func (e *SampleLimitError) reason() string { return idMaxFetchedSamples }

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

func (e *SeriesLimitError) reason() string { return idMaxFetchedSeries }
