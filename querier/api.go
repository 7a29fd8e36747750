package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/httputil"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/strata-metrics/strata/tenant"
)

// The handlers port Prometheus' web/api/v1/api.go (v3) onto a per-tenant
// Queryable; that file is the reference for every behaviour here.

type apiResult struct {
	data      any
	err       *apiError
	warnings  annotations.Annotations
	finalizer func() // runs after the response is written
}

type apiFunc func(r *http.Request, tenantID string) apiResult

type route struct {
	pattern, name string
	h             http.Handler
}

func (q *Querier) routes() []route {
	var rs []route
	add := func(methods []string, path, name string, h http.Handler) {
		for _, m := range methods {
			rs = append(rs, route{pattern: m + " " + path, name: name, h: h})
		}
	}
	getPost := []string{http.MethodGet, http.MethodPost}
	get := []string{http.MethodGet}
	add(getPost, "/api/v1/query", "api_v1_query", q.wrap(q.query))
	add(getPost, "/api/v1/query_range", "api_v1_query_range", q.wrap(q.queryRange))
	add(getPost, "/api/v1/query_exemplars", "api_v1_query_exemplars", q.wrap(q.queryExemplars))
	add(getPost, "/api/v1/format_query", "api_v1_format_query", q.wrapNoTenant(q.formatQuery))
	add(getPost, "/api/v1/labels", "api_v1_labels", q.wrap(q.labelNames))
	add(get, "/api/v1/label/{name}/values", "api_v1_label_values", q.wrap(q.labelValues))
	add(getPost, "/api/v1/series", "api_v1_series", q.wrap(q.series))
	add(get, "/api/v1/metadata", "api_v1_metadata", q.wrap(q.metricMetadata))
	add(get, "/api/v1/status/buildinfo", "api_v1_status_buildinfo", q.wrapNoTenant(q.buildInfo))
	add(get, "/api/v1/status/tsdb", "api_v1_status_tsdb", q.wrap(q.tsdbStatus)) // api_status.go
	add(get, "/api/v1/user_stats", "api_v1_user_stats", httputil.CompressionHandler{Handler: q.userStatsHandler()})
	return rs
}

// wrap resolves the tenant, runs f and writes its result as Prometheus
// does, compressed when the client accepts it. A refusal by a per-tenant
// limit is counted (limits.go).
func (q *Querier) wrap(f apiFunc) http.Handler {
	return q.wrapNoTenant(func(r *http.Request, _ string) apiResult {
		tenantID, err := q.tenants.FromHTTP(r)
		if err != nil {
			return apiResult{err: &apiError{typ: errorBadData, err: err, code: tenant.HTTPStatus(err)}}
		}
		label := q.tenantLabels.Value(tenantID) // the tenant is active
		res := f(r, tenantID)
		if res.err != nil {
			q.countRejected(label, res.err.err)
		}
		return res
	})
}

func (q *Querier) wrapNoTenant(f apiFunc) http.Handler {
	return httputil.CompressionHandler{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		result := f(r, "")
		if result.finalizer != nil {
			defer result.finalizer()
		}
		if result.err != nil {
			q.respondError(w, result.err, result.data)
			return
		}
		if result.data != nil {
			q.respond(w, r, result.data, result.warnings, r.FormValue("query"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
}

func (q *Querier) respond(w http.ResponseWriter, r *http.Request, data any, warnings annotations.Annotations, query string) {
	warn, info := warnings.AsStrings(query, 10, 10)
	err := encodeSuccess(data, warn, info, func(b []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if n, err := w.Write(b); err != nil {
			q.log.Debug("write response", "url", r.URL, "bytes_written", n, "err", err)
		}
	})
	if err != nil {
		q.log.Error("encode response", "url", r.URL, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (q *Querier) respondError(w http.ResponseWriter, apiErr *apiError, data any) {
	code := apiErr.status()
	if code >= http.StatusInternalServerError {
		q.log.Warn("request failed", "type", apiErr.typ, "err", apiErr.err)
	}
	err := encodeError(apiErr, data, func(b []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if n, err := w.Write(b); err != nil {
			q.log.Debug("write error response", "bytes_written", n, "err", err)
		}
	})
	if err != nil {
		q.log.Error("encode error response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// queryData is the data of /query and /query_range.
type queryData struct {
	ResultType parser.ValueType
	Result     parser.Value
	Stats      stats.QueryStats
}

func (q *Querier) query(r *http.Request, tenantID string) (result apiResult) {
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", q.now())
	if err != nil {
		return invalidParamError(err, "time")
	}
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		var cancel context.CancelFunc
		timeout, err := parseDuration(to)
		if err != nil {
			return invalidParamError(err, "timeout")
		}
		ctx, cancel = context.WithDeadline(ctx, q.now().Add(timeout))
		defer cancel()
	}
	opts, err := extractQueryOpts(r)
	if err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	ctx, qbl, done, lerr := q.limitQuery(ctx, tenantID, ts, ts) // limits.go
	if lerr != nil {
		return apiResult{err: lerr}
	}
	defer done()
	qry, err := q.engine.NewInstantQuery(ctx, qbl, opts, r.FormValue("query"), ts)
	if err != nil {
		return invalidParamError(err, "query")
	}
	// From here on, return with qry.Close as finalizer or close it here.
	defer func() {
		if result.finalizer == nil {
			qry.Close()
		}
	}()
	res := qry.Exec(ctx)
	res.Err = limitErr(ctx, res.Err) // limits.go
	if res.Err != nil {
		return apiResult{err: returnAPIError(res.Err), warnings: res.Warnings, finalizer: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		var truncated bool
		if res, truncated = truncateResults(res, limit); truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	if warn := statsParamWarning(r.FormValue("stats")); warn != nil {
		warnings = warnings.Add(warn)
	}
	return apiResult{data: &queryData{ResultType: res.Value.Type(), Result: res.Value, Stats: queryStats(qry.Stats(), r)}, warnings: warnings, finalizer: qry.Close}
}

func (q *Querier) queryRange(r *http.Request, tenantID string) (result apiResult) {
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParamError(err, "end")
	}
	if end.Before(start) {
		return invalidParamError(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParamError(err, "step")
	}
	if step <= 0 {
		return invalidParamError(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	// For safety, limit the number of returned points per timeseries.
	if end.Sub(start)/step > 11000 {
		err := errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	if max := q.cfg.MaxQueryLength; max > 0 && end.Sub(start) > max {
		err := fmt.Errorf("the query time range exceeds the limit (query length: %s, limit: %s); shorten it or raise -querier.max-query-length", end.Sub(start), max)
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		var cancel context.CancelFunc
		timeout, err := parseDuration(to)
		if err != nil {
			return invalidParamError(err, "timeout")
		}
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	opts, err := extractQueryOpts(r)
	if err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	ctx, qbl, done, lerr := q.limitQuery(ctx, tenantID, start, end) // limits.go
	if lerr != nil {
		return apiResult{err: lerr}
	}
	defer done()
	qry, err := q.engine.NewRangeQuery(ctx, qbl, opts, r.FormValue("query"), start, end, step)
	if err != nil {
		return invalidParamError(err, "query")
	}
	defer func() {
		if result.finalizer == nil {
			qry.Close()
		}
	}()
	res := qry.Exec(ctx)
	res.Err = limitErr(ctx, res.Err) // limits.go
	if res.Err != nil {
		return apiResult{err: returnAPIError(res.Err), warnings: res.Warnings, finalizer: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		var truncated bool
		if res, truncated = truncateResults(res, limit); truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	if warn := statsParamWarning(r.FormValue("stats")); warn != nil {
		warnings = warnings.Add(warn)
	}
	return apiResult{data: &queryData{ResultType: res.Value.Type(), Result: res.Value, Stats: queryStats(qry.Stats(), r)}, warnings: warnings, finalizer: qry.Close}
}

// formatQuery pretty-prints a query, as Grafana's query editor asks.
func (q *Querier) formatQuery(r *http.Request, _ string) apiResult {
	expr, err := q.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return invalidParamError(err, "query")
	}
	return apiResult{data: expr.Pretty(0)}
}

// queryStats renders the engine's statistics when the stats parameter is
// set, as Prometheus' DefaultStatsRenderer.
func queryStats(s *stats.Statistics, r *http.Request) stats.QueryStats {
	if r.FormValue("stats") == "" {
		return nil
	}
	return stats.NewQueryStats(s)
}

func (q *Querier) queryExemplars(r *http.Request, tenantID string) apiResult {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParamError(err, "end")
	}
	if end.Before(start) {
		err := errors.New("end timestamp must not be before start timestamp")
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	expr, err := q.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) < 1 {
		return apiResult{}
	}
	ml, aerr := q.limitMeta(r.Context(), tenantID, start, end) // limits.go
	if aerr != nil {
		return apiResult{err: aerr}
	}
	defer ml.done()
	if ml.empty {
		return apiResult{data: []exemplar.QueryResult{}} // the whole range is past the lookback
	}
	eq, err := q.ExemplarQueryable(tenantID).ExemplarQuerier(ml.ctx)
	if err != nil {
		return apiResult{err: returnAPIError(err)}
	}
	res, err := eq.Select(timestamp.FromTime(ml.start), timestamp.FromTime(ml.end), selectors...)
	if err != nil {
		return apiResult{err: returnAPIError(limitErr(ml.ctx, err))}
	}
	if err := ml.countSeries(tenantID, len(res)); err != nil {
		return apiResult{err: returnAPIError(err)}
	}
	return apiResult{data: res}
}

// buildInfoData is Prometheus' buildinfo with Mimir's application and
// features: Grafana's Prometheus data source takes a features object as
// the sign of a Mimir-style backend and reads which extras exist from it.
type buildInfoData struct {
	Application string            `json:"application"`
	Version     string            `json:"version"`
	Revision    string            `json:"revision"`
	Branch      string            `json:"branch"`
	BuildUser   string            `json:"buildUser"`
	BuildDate   string            `json:"buildDate"`
	GoVersion   string            `json:"goVersion"`
	Features    map[string]string `json:"features"`
}

func (q *Querier) buildInfo(*http.Request, string) apiResult {
	b := q.build
	if b.Version == "" {
		b.Version = "devel"
	}
	return apiResult{data: &buildInfoData{
		Application: "Strata",
		Version:     b.Version, Revision: b.Revision, Branch: b.Branch, BuildUser: b.BuildUser, BuildDate: b.BuildDate,
		GoVersion: runtime.Version(),
		// Mimir's feature names, "true" or "false" as Grafana compares them.
		Features: map[string]string{
			"ruler_config_api":        "false",
			"alertmanager_config_api": "false",
			"query_sharding":          "false",
			"federated_rules":         "false",
		},
	}}
}
