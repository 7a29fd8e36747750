package querier

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/promapi"
)

// checkContextEveryNIterations bounds the work between context checks in
// the series loop.
const checkContextEveryNIterations = 128

// labelParams are what /labels and /label/<name>/values share.
type labelParams struct {
	limit       int
	querier     storage.Querier
	hints       *storage.LabelHints
	matcherSets [][]*labels.Matcher
	ml          metaLimits // limits.go: ml.ctx is the request's context
}

// close closes the querier and ends the request's limits.
func (p *labelParams) close() {
	_ = p.querier.Close()
	p.ml.done()
}

// openLabelQuery parses limit, start, end and match[], applies the
// tenant's query limits (limitMeta) and opens a querier over the range;
// the caller closes p.
func (q *Querier) openLabelQuery(r *http.Request, tenantID string) (labelParams, *promapi.Result) {
	limit, err := promapi.ParseLimit(r.FormValue("limit"))
	if err != nil {
		res := invalidParam(err, "limit")
		return labelParams{}, &res
	}
	start, err := promapi.ParseTimeParam(r, "start", promapi.MinTime())
	if err != nil {
		res := invalidParam(err, "start")
		return labelParams{}, &res
	}
	end, err := promapi.ParseTimeParam(r, "end", promapi.MaxTime())
	if err != nil {
		res := invalidParam(err, "end")
		return labelParams{}, &res
	}
	matcherSets, err := promapi.ParseMatchers(q.parser, r.Form["match[]"])
	if err != nil {
		return labelParams{}, &promapi.Result{Err: promapi.BadData(err)}
	}
	ml, aerr := q.limitMeta(r.Context(), tenantID, start, end)
	if aerr != nil {
		return labelParams{}, &promapi.Result{Err: aerr}
	}
	qr := storage.NoopQuerier() // the whole range is past the lookback
	if !ml.empty {
		if qr, err = q.Queryable(tenantID).Querier(timestamp.FromTime(ml.start), timestamp.FromTime(ml.end)); err != nil {
			ml.done()
			return labelParams{}, &promapi.Result{Err: classify(err, promapi.ErrorExec)}
		}
	}
	return labelParams{limit: limit, querier: qr, hints: &storage.LabelHints{Limit: promapi.HintLimit(limit)}, matcherSets: matcherSets, ml: ml}, nil
}

// labelUnion calls get once per match[] set (once with no matchers when
// there is none) and returns the sorted union, cut to limit with a warning.
func labelUnion(p labelParams, get func(ms ...*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	var (
		out      []string
		warnings annotations.Annotations
	)
	if len(p.matcherSets) <= 1 {
		var ms []*labels.Matcher
		if len(p.matcherSets) == 1 {
			ms = p.matcherSets[0]
		}
		vals, ws, err := get(ms...)
		if err != nil {
			return nil, ws, err
		}
		out, warnings = slices.Clone(vals), ws
	} else {
		set := map[string]struct{}{}
		for _, ms := range p.matcherSets {
			vals, ws, err := get(ms...)
			if err != nil {
				return nil, warnings, err
			}
			warnings.Merge(ws)
			for _, v := range vals {
				set[v] = struct{}{}
			}
		}
		out = make([]string, 0, len(set))
		for v := range set {
			out = append(out, v)
		}
	}
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	if p.limit > 0 && len(out) > p.limit {
		out = out[:p.limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return out, warnings, nil
}

func (q *Querier) labelNames(r *http.Request, tenantID string) promapi.Result {
	p, bad := q.openLabelQuery(r, tenantID)
	if bad != nil {
		return *bad
	}
	defer p.close()
	names, warnings, err := labelUnion(p, func(ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return p.querier.LabelNames(p.ml.ctx, p.hints, ms...)
	})
	if err != nil {
		return promapi.Result{Err: classify(limitErr(p.ml.ctx, err), promapi.ErrorExec), Warnings: warnings}
	}
	return promapi.Result{Data: names, Warnings: warnings}
}

func (q *Querier) labelValues(r *http.Request, tenantID string) promapi.Result {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData(fmt.Errorf("invalid label name: %q", name))
	}
	p, bad := q.openLabelQuery(r, tenantID)
	if bad != nil {
		return *bad
	}
	defer p.close()
	vals, warnings, err := labelUnion(p, func(ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
		return p.querier.LabelValues(p.ml.ctx, name, p.hints, ms...)
	})
	if err != nil {
		return promapi.Result{Err: classify(limitErr(p.ml.ctx, err), promapi.ErrorExec), Warnings: warnings}
	}
	return promapi.Result{Data: vals, Warnings: warnings}
}

func (q *Querier) series(r *http.Request, tenantID string) (result promapi.Result) {
	if err := r.ParseForm(); err != nil {
		return badData(fmt.Errorf("error parsing form values: %w", err))
	}
	if len(r.Form["match[]"]) == 0 {
		return badData(errors.New("no match[] parameter provided"))
	}
	limit, err := promapi.ParseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := promapi.ParseTimeParam(r, "start", promapi.MinTime())
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := promapi.ParseTimeParam(r, "end", promapi.MaxTime())
	if err != nil {
		return invalidParam(err, "end")
	}
	matcherSets, err := promapi.ParseMatchers(q.parser, r.Form["match[]"])
	if err != nil {
		return invalidParam(err, "match[]")
	}
	ml, aerr := q.limitMeta(r.Context(), tenantID, start, end) // limits.go
	if aerr != nil {
		return promapi.Result{Err: aerr}
	}
	defer ml.done()
	if ml.empty {
		return promapi.Result{Data: []labels.Labels{}} // the whole range is past the lookback
	}
	ctx := ml.ctx
	qr, err := q.Queryable(tenantID).Querier(timestamp.FromTime(ml.start), timestamp.FromTime(ml.end))
	if err != nil {
		return promapi.Result{Err: returnAPIError(err)}
	}
	defer func() {
		if result.Finalize == nil {
			qr.Close()
		}
	}()
	closer := func() { qr.Close() }

	hints := &storage.SelectHints{
		Start: timestamp.FromTime(ml.start),
		End:   timestamp.FromTime(ml.end),
		Func:  "series", // no such function: the token for lookups that need no samples
		Limit: promapi.HintLimit(limit),
	}
	var set storage.SeriesSet
	if len(matcherSets) > 1 {
		var sets []storage.SeriesSet
		for _, mset := range matcherSets {
			sets = append(sets, qr.Select(ctx, true, hints, mset...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	} else {
		set = qr.Select(ctx, false, hints, matcherSets[0]...)
	}

	metrics := []labels.Labels{}
	warnings := set.Warnings()
	i := 1
	for set.Next() {
		if i%checkContextEveryNIterations == 0 {
			if err := ctx.Err(); err != nil {
				return promapi.Result{Err: returnAPIError(limitErr(ctx, err)), Warnings: warnings, Finalize: closer}
			}
		}
		i++
		metrics = append(metrics, set.At().Labels())
		if limit > 0 && len(metrics) > limit {
			metrics = metrics[:limit]
			warnings.Add(errors.New("results truncated due to limit"))
			return promapi.Result{Data: metrics, Warnings: warnings, Finalize: closer}
		}
		if err := ml.countSeries(tenantID, len(metrics)); err != nil {
			return promapi.Result{Err: returnAPIError(err), Warnings: warnings, Finalize: closer}
		}
	}
	if err := set.Err(); err != nil {
		return promapi.Result{Err: returnAPIError(limitErr(ctx, err)), Warnings: warnings, Finalize: closer}
	}
	return promapi.Result{Data: metrics, Warnings: warnings, Finalize: closer}
}

func (q *Querier) metricMetadata(r *http.Request, tenantID string) promapi.Result {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return badData(errors.New("limit must be a number"))
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			return badData(errors.New("limit_per_metric must be a number"))
		}
	}
	res, warnings, err := metricMetadata(r.Context(), q.fanout, tenantID, r.FormValue("metric"), limit, limitPerMetric)
	if err != nil {
		return promapi.Result{Err: returnAPIError(err)}
	}
	return promapi.Result{Data: res, Warnings: warnings}
}
