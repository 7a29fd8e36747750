package promapi

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/stats"
)

// The parsing below follows Prometheus' web/api/v1/api.go (v3) line by line,
// error messages included: clients and tests match on them.

var (
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// MinTime is Prometheus' default of an omitted start.
func MinTime() time.Time { return minTime }

// MaxTime is Prometheus' default of an omitted end.
func MaxTime() time.Time { return maxTime }

// ParseTimeParam parses the form value paramName with ParseTime, or
// returns defaultValue when it is empty.
func ParseTimeParam(r *http.Request, paramName string, defaultValue time.Time) (time.Time, error) {
	val := r.FormValue(paramName)
	if val == "" {
		return defaultValue, nil
	}
	result, err := ParseTime(val)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", paramName, err)
	}
	return result, nil
}

// ParseTime accepts Unix seconds (with a fraction, rounded to the
// millisecond) and RFC 3339.
func ParseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		s, ns := math.Modf(t)
		ns = math.Round(ns*1000) / 1000
		return time.Unix(int64(s), int64(ns*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// time.Parse handles 4-digit years only; these are the defaults.
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// ParseDuration accepts float seconds and Prometheus durations (5m, 1h30m).
func ParseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// ParseMatchers parses match[] values with p and refuses a set whose
// every matcher matches the empty string.
func ParseMatchers(p parser.Parser, matchers []string) ([][]*labels.Matcher, error) {
	matcherSets, err := p.ParseMetricSelectors(matchers)
	if err != nil {
		return nil, err
	}
OUTER:
	for _, ms := range matcherSets {
		for _, lm := range ms {
			if lm != nil && !lm.Matches("") {
				continue OUTER
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return matcherSets, nil
}

// ParseLimit parses a limit parameter; it returns 0 for no limit.
func ParseLimit(limitStr string) (limit int, err error) {
	if limitStr == "" {
		return limit, nil
	}
	limit, err = strconv.Atoi(limitStr)
	if err != nil {
		return limit, err
	}
	if limit < 0 {
		return limit, errors.New("limit must be non-negative")
	}
	return limit, nil
}

// HintLimit asks storage for one more than the limit, so that a
// truncation can be reported.
func HintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

// maxPoints is Prometheus' cap of the points per series of a range query.
const maxPoints = 11000

// ParseRange parses a range query's start, end and step.
func ParseRange(r *http.Request) (start, end time.Time, step time.Duration, _ *Error) {
	start, err := ParseTime(r.FormValue("start"))
	if err != nil {
		return start, end, step, InvalidParam(err, "start")
	}
	end, err = ParseTime(r.FormValue("end"))
	if err != nil {
		return start, end, step, InvalidParam(err, "end")
	}
	if end.Before(start) {
		return start, end, step, InvalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err = ParseDuration(r.FormValue("step"))
	if err != nil {
		return start, end, step, InvalidParam(err, "step")
	}
	if step <= 0 {
		return start, end, step, InvalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	// For safety, limit the number of returned points per timeseries.
	if end.Sub(start)/step > maxPoints {
		return start, end, step, BadData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	return start, end, step, nil
}

const (
	statsTrue = "true"
	statsAll  = "all"
)

// QueryOpts are the engine options of a query's lookback_delta and stats
// parameters.
func QueryOpts(r *http.Request) (promql.QueryOpts, error) {
	var duration time.Duration
	if strDuration := r.FormValue("lookback_delta"); strDuration != "" {
		parsedDuration, err := ParseDuration(strDuration)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		duration = parsedDuration
	}
	return promql.NewPrometheusQueryOpts(r.FormValue("stats") == statsAll, duration), nil
}

// StatsWarning warns of stats values Prometheus will reject later; nil
// for the accepted ones.
func StatsWarning(s string) error {
	switch s {
	case "", statsTrue, statsAll:
		return nil
	}
	return fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", s, statsTrue, statsAll)
}

// QueryStats renders the engine's statistics when the stats parameter is
// set, as Prometheus' DefaultStatsRenderer; nil otherwise.
func QueryStats(s *stats.Statistics, r *http.Request) stats.QueryStats {
	if r.FormValue("stats") == "" {
		return nil
	}
	return stats.NewQueryStats(s)
}

// Truncate cuts vectors and matrices to limit series and reports whether
// it cut.
func Truncate(result *promql.Result, limit int) (*promql.Result, bool) {
	switch v := result.Value.(type) {
	case promql.Matrix:
		if len(v) > limit {
			result.Value = v[:limit]
			return result, true
		}
	case promql.Vector:
		if len(v) > limit {
			result.Value = v[:limit]
			return result, true
		}
	}
	return result, false
}
