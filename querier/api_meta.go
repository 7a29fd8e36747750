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
)

// checkContextEveryNIterations bounds the work between context checks in
// the series loop.
const checkContextEveryNIterations = 128

func (q *Querier) labelNames(r *http.Request, tenantID string) apiResult {
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParamError(err, "end")
	}
	matcherSets, err := q.parseMatchersParam(r.Form["match[]"])
	if err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	hints := &storage.LabelHints{Limit: toHintLimit(limit)}
	qr, err := q.Queryable(tenantID).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: returnAPIError(err)}
	}
	defer qr.Close()

	var (
		names    []string
		warnings annotations.Annotations
	)
	if len(matcherSets) > 1 {
		set := map[string]struct{}{}
		for _, matchers := range matcherSets {
			vals, callWarnings, err := qr.LabelNames(r.Context(), hints, matchers...)
			if err != nil {
				return apiResult{err: returnAPIError(err), warnings: warnings}
			}
			warnings.Merge(callWarnings)
			for _, v := range vals {
				set[v] = struct{}{}
			}
		}
		names = make([]string, 0, len(set))
		for k := range set {
			names = append(names, k)
		}
		slices.Sort(names)
	} else {
		var matchers []*labels.Matcher
		if len(matcherSets) == 1 {
			matchers = matcherSets[0]
		}
		names, warnings, err = qr.LabelNames(r.Context(), hints, matchers...)
		if err != nil {
			return apiResult{err: classify(err, errorExec), warnings: warnings}
		}
	}
	if names == nil {
		names = []string{}
	}
	if limit > 0 && len(names) > limit {
		names = names[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: names, warnings: warnings}
}

func (q *Querier) labelValues(r *http.Request, tenantID string) (result apiResult) {
	ctx := r.Context()
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return apiResult{err: &apiError{typ: errorBadData, err: fmt.Errorf("invalid label name: %q", name)}}
	}
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParamError(err, "end")
	}
	matcherSets, err := q.parseMatchersParam(r.Form["match[]"])
	if err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: err}}
	}
	hints := &storage.LabelHints{Limit: toHintLimit(limit)}
	qr, err := q.Queryable(tenantID).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: classify(err, errorExec)}
	}
	// The values belong to the querier: close it after the response.
	defer func() {
		if result.finalizer == nil {
			qr.Close()
		}
	}()
	closer := func() { qr.Close() }

	var (
		vals     []string
		warnings annotations.Annotations
	)
	if len(matcherSets) > 1 {
		set := map[string]struct{}{}
		for _, matchers := range matcherSets {
			vs, callWarnings, err := qr.LabelValues(ctx, name, hints, matchers...)
			if err != nil {
				return apiResult{err: classify(err, errorExec), warnings: warnings, finalizer: closer}
			}
			warnings.Merge(callWarnings)
			for _, v := range vs {
				set[v] = struct{}{}
			}
		}
		vals = make([]string, 0, len(set))
		for v := range set {
			vals = append(vals, v)
		}
	} else {
		var matchers []*labels.Matcher
		if len(matcherSets) == 1 {
			matchers = matcherSets[0]
		}
		vals, warnings, err = qr.LabelValues(ctx, name, hints, matchers...)
		if err != nil {
			return apiResult{err: classify(err, errorExec), warnings: warnings, finalizer: closer}
		}
		if vals == nil {
			vals = []string{}
		}
	}
	slices.Sort(vals)
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: vals, warnings: warnings, finalizer: closer}
}

func (q *Querier) series(r *http.Request, tenantID string) (result apiResult) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		return apiResult{err: &apiError{typ: errorBadData, err: fmt.Errorf("error parsing form values: %w", err)}}
	}
	if len(r.Form["match[]"]) == 0 {
		return apiResult{err: &apiError{typ: errorBadData, err: errors.New("no match[] parameter provided")}}
	}
	limit, err := parseLimitParam(r.FormValue("limit"))
	if err != nil {
		return invalidParamError(err, "limit")
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParamError(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParamError(err, "end")
	}
	matcherSets, err := q.parseMatchersParam(r.Form["match[]"])
	if err != nil {
		return invalidParamError(err, "match[]")
	}
	qr, err := q.Queryable(tenantID).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: returnAPIError(err)}
	}
	defer func() {
		if result.finalizer == nil {
			qr.Close()
		}
	}()
	closer := func() { qr.Close() }

	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // no such function: the token for lookups that need no samples
		Limit: toHintLimit(limit),
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
				return apiResult{err: returnAPIError(err), warnings: warnings, finalizer: closer}
			}
		}
		i++
		metrics = append(metrics, set.At().Labels())
		if limit > 0 && len(metrics) > limit {
			metrics = metrics[:limit]
			warnings.Add(errors.New("results truncated due to limit"))
			return apiResult{data: metrics, warnings: warnings, finalizer: closer}
		}
	}
	if err := set.Err(); err != nil {
		return apiResult{err: returnAPIError(err), warnings: warnings, finalizer: closer}
	}
	return apiResult{data: metrics, warnings: warnings, finalizer: closer}
}

func (q *Querier) metricMetadata(r *http.Request, tenantID string) apiResult {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return apiResult{err: &apiError{typ: errorBadData, err: errors.New("limit must be a number")}}
		}
	}
	limitPerMetric := -1
	if s := r.FormValue("limit_per_metric"); s != "" {
		var err error
		if limitPerMetric, err = strconv.Atoi(s); err != nil {
			return apiResult{err: &apiError{typ: errorBadData, err: errors.New("limit_per_metric must be a number")}}
		}
	}
	res, warnings, err := metricMetadata(r.Context(), q.fanout, tenantID, r.FormValue("metric"), limit, limitPerMetric)
	if err != nil {
		return apiResult{err: returnAPIError(err)}
	}
	return apiResult{data: res, warnings: warnings}
}
