package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/httputil"

	"github.com/strata-metrics/strata/promapi"
)

// The handlers port Prometheus' web/api/v1/api.go (v3) onto a per-tenant
// Queryable; that file is the reference for every behaviour here.
// Parameters, JSON and error classes common to every Prometheus API
// server are promapi's; what is here needs the querier's engine, storage
// or limits.

type apiFunc func(r *http.Request, tenantID string) promapi.Result

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
	add(getPost, "/api/v1/format_query", "api_v1_format_query", promapi.Handler(q.log, q.formatQuery))
	add(getPost, "/api/v1/labels", "api_v1_labels", q.wrap(q.labelNames))
	add(get, "/api/v1/label/{name}/values", "api_v1_label_values", q.wrap(q.labelValues))
	add(getPost, "/api/v1/series", "api_v1_series", q.wrap(q.series))
	add(get, "/api/v1/metadata", "api_v1_metadata", q.wrap(q.metricMetadata))
	add(get, "/api/v1/status/buildinfo", "api_v1_status_buildinfo", promapi.Handler(q.log, func(*http.Request) promapi.Result {
		return promapi.Result{Data: q.build.Data()}
	}))
	add(get, "/api/v1/status/tsdb", "api_v1_status_tsdb", q.wrap(q.tsdbStatus)) // api_status.go
	add(get, "/api/v1/user_stats", "api_v1_user_stats", httputil.CompressionHandler{Handler: q.userStatsHandler()})
	return rs
}

// wrap resolves the tenant, runs f and writes its result as Prometheus
// does (promapi.Handler). A refusal by a per-tenant limit is counted
// (limits.go).
func (q *Querier) wrap(f apiFunc) http.Handler {
	return promapi.Handler(q.log, func(r *http.Request) promapi.Result {
		tenantID, err := q.tenants.FromHTTP(r)
		if err != nil {
			return promapi.Result{Err: promapi.TenantError(err)}
		}
		label := q.tenantLabels.Value(tenantID) // the tenant is active
		res := f(r, tenantID)
		if res.Err != nil {
			q.countRejected(label, res.Err.Err)
		}
		return res
	})
}

// invalidParam is promapi.InvalidParam as a Result.
func invalidParam(err error, parameter string) promapi.Result {
	return promapi.Result{Err: promapi.InvalidParam(err, parameter)}
}

// badData is promapi.BadData as a Result.
func badData(err error) promapi.Result {
	return promapi.Result{Err: promapi.BadData(err)}
}

func (q *Querier) query(r *http.Request, tenantID string) promapi.Result {
	limit, err := promapi.ParseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := promapi.ParseTimeParam(r, "time", q.now())
	if err != nil {
		return invalidParam(err, "time")
	}
	if err := q.exprLim.CheckText(r.FormValue("query")); err != nil {
		return promapi.Result{Err: err}
	}
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		var cancel context.CancelFunc
		timeout, err := promapi.ParseDuration(to)
		if err != nil {
			return invalidParam(err, "timeout")
		}
		ctx, cancel = context.WithDeadline(ctx, q.now().Add(timeout))
		defer cancel()
	}
	opts, err := promapi.QueryOpts(r)
	if err != nil {
		return badData(err)
	}
	ctx, qbl, done, lerr := q.limitQuery(ctx, tenantID, ts, ts) // limits.go
	if lerr != nil {
		return promapi.Result{Err: lerr}
	}
	defer done()
	qry, err := q.engine.NewInstantQuery(ctx, qbl, opts, r.FormValue("query"), ts)
	if err != nil {
		return invalidParam(err, "query")
	}
	if err := q.checkStatement(qry); err != nil {
		return promapi.Result{Err: err}
	}
	return evaluate(ctx, r, qry, limit)
}

func (q *Querier) queryRange(r *http.Request, tenantID string) promapi.Result {
	limit, err := promapi.ParseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, end, step, perr := promapi.ParseRange(r)
	if perr != nil {
		return promapi.Result{Err: perr}
	}
	if err := q.exprLim.CheckText(r.FormValue("query")); err != nil {
		return promapi.Result{Err: err}
	}
	if max := q.cfg.MaxQueryLength; max > 0 && end.Sub(start) > max {
		return badData(fmt.Errorf("the query time range exceeds the limit (query length: %s, limit: %s); shorten it or raise -querier.max-query-length", end.Sub(start), max))
	}
	ctx := r.Context()
	if to := r.FormValue("timeout"); to != "" {
		var cancel context.CancelFunc
		timeout, err := promapi.ParseDuration(to)
		if err != nil {
			return invalidParam(err, "timeout")
		}
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	opts, err := promapi.QueryOpts(r)
	if err != nil {
		return badData(err)
	}
	ctx, qbl, done, lerr := q.limitQuery(ctx, tenantID, start, end) // limits.go
	if lerr != nil {
		return promapi.Result{Err: lerr}
	}
	defer done()
	qry, err := q.engine.NewRangeQuery(ctx, qbl, opts, r.FormValue("query"), start, end, step)
	if err != nil {
		return invalidParam(err, "query")
	}
	if err := q.checkStatement(qry); err != nil {
		return promapi.Result{Err: err}
	}
	return evaluate(ctx, r, qry, limit)
}

// checkStatement refuses a parsed query whose subqueries would cost more
// than the limits allow, closing it.
func (q *Querier) checkStatement(qry promql.Query) *promapi.Error {
	stmt, ok := qry.Statement().(*parser.EvalStmt)
	if !ok {
		return nil
	}
	if err := q.exprLim.CheckSubqueries(stmt.Expr); err != nil {
		qry.Close()
		return err
	}
	return nil
}

// evaluate runs qry and answers its result, cut to limit series (0: no
// limit) with a warning, with the engine's statistics when the request
// asks for them. qry closes after the response is written: the result
// lives in its memory.
func evaluate(ctx context.Context, r *http.Request, qry promql.Query, limit int) promapi.Result {
	res := qry.Exec(ctx)
	res.Err = limitErr(ctx, res.Err) // limits.go
	if res.Err != nil {
		return promapi.Result{Err: returnAPIError(res.Err), Warnings: res.Warnings, Finalize: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		var truncated bool
		if res, truncated = promapi.Truncate(res, limit); truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	if warn := promapi.StatsWarning(r.FormValue("stats")); warn != nil {
		warnings = warnings.Add(warn)
	}
	data := &promapi.QueryData{ResultType: res.Value.Type(), Result: res.Value, Stats: promapi.QueryStats(qry.Stats(), r)}
	return promapi.Result{Data: data, Warnings: warnings, Finalize: qry.Close}
}

// formatQuery pretty-prints a query, as Grafana's query editor asks.
func (q *Querier) formatQuery(r *http.Request) promapi.Result {
	if err := q.exprLim.CheckText(r.FormValue("query")); err != nil {
		return promapi.Result{Err: err}
	}
	expr, err := q.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return invalidParam(err, "query")
	}
	return promapi.Result{Data: expr.Pretty(0)}
}

func (q *Querier) queryExemplars(r *http.Request, tenantID string) promapi.Result {
	start, err := promapi.ParseTimeParam(r, "start", promapi.MinTime())
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := promapi.ParseTimeParam(r, "end", promapi.MaxTime())
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return badData(errors.New("end timestamp must not be before start timestamp"))
	}
	if err := q.exprLim.CheckText(r.FormValue("query")); err != nil {
		return promapi.Result{Err: err}
	}
	expr, err := q.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return badData(err)
	}
	selectors := parser.ExtractSelectors(expr)
	if len(selectors) < 1 {
		return promapi.Result{}
	}
	ml, aerr := q.limitMeta(r.Context(), tenantID, start, end) // limits.go
	if aerr != nil {
		return promapi.Result{Err: aerr}
	}
	defer ml.done()
	if ml.empty {
		return promapi.Result{Data: []exemplar.QueryResult{}} // the whole range is past the lookback
	}
	eq, err := q.ExemplarQueryable(tenantID).ExemplarQuerier(ml.ctx)
	if err != nil {
		return promapi.Result{Err: returnAPIError(err)}
	}
	res, err := eq.Select(timestamp.FromTime(ml.start), timestamp.FromTime(ml.end), selectors...)
	if err != nil {
		return promapi.Result{Err: returnAPIError(limitErr(ml.ctx, err))}
	}
	if err := ml.countSeries(tenantID, len(res)); err != nil {
		return promapi.Result{Err: returnAPIError(err)}
	}
	return promapi.Result{Data: res}
}
