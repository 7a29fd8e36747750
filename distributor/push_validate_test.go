package distributor

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/remotewrite"
)

// TestValidate pushes one request per rule through the handler to one fake
// ingester and checks the status, the exact message and what was
// forwarded (nil: no push at all).
func TestValidate(t *testing.T) {
	hour := time.Hour.Milliseconds()
	good := series("__name__", "up", "job", "a")
	exemplar := func(ts int64, nv ...string) prompb.Exemplar {
		e := prompb.Exemplar{Value: 1, Timestamp: ts}
		for i := 0; i+1 < len(nv); i += 2 {
			e.Labels = append(e.Labels, prompb.Label{Name: nv[i], Value: nv[i+1]})
		}
		return e
	}
	withExemplars := func(ts prompb.TimeSeries, es ...prompb.Exemplar) prompb.TimeSeries {
		ts.Exemplars = es
		return ts
	}
	intHist := prompb.FromIntHistogram(testNowMs, &histogram.Histogram{
		Count: 5, Sum: 10, Schema: 0, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0},
	})
	floatHist := prompb.FromFloatHistogram(testNowMs, &histogram.FloatHistogram{
		Count: 5, Sum: 10, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 1, Length: 2}}, PositiveBuckets: []float64{2, 2},
	})
	badHist := intHist
	badHist.PositiveDeltas = []int64{2} // spans say 2 buckets
	withHists := func(ts prompb.TimeSeries, hs ...prompb.Histogram) prompb.TimeSeries {
		ts.Samples = nil
		ts.Histograms = hs
		return ts
	}
	meta := prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: ""}
	tightLimits := func(f func(*limits.Limits)) *limits.Limits {
		l := defaultLimits()
		f(&l)
		return &l
	}
	longRunes := strings.Repeat("é", 65) // twice, plus "trace_id": 138 runes

	for _, tc := range []struct {
		name     string
		in       []prompb.TimeSeries
		meta     []prompb.MetricMetadata
		limits   *limits.Limits
		utf8     bool
		wantCode int
		wantMsg  string
		want     []prompb.TimeSeries // forwarded; nil means nothing was pushed
		wantMeta []prompb.MetricMetadata
	}{
		{name: "ok", in: []prompb.TimeSeries{good}, wantCode: 204, want: []prompb.TimeSeries{good}},
		{
			name: "unsorted labels are sorted", wantCode: 204,
			in:   []prompb.TimeSeries{series("job", "a", "__name__", "up", "instance", "h:1")},
			want: []prompb.TimeSeries{series("__name__", "up", "instance", "h:1", "job", "a")},
		},
		{
			name: "empty label values are dropped", wantCode: 204,
			in:   []prompb.TimeSeries{series("__name__", "up", "env", "", "job", "a", "zone", "")},
			want: []prompb.TimeSeries{good},
		},
		{
			name: "missing metric name", wantCode: 400,
			in:      []prompb.TimeSeries{series("job", "a")},
			wantMsg: `series {job="a"} has no metric name (label __name__) [strata-missing-metric-name]`,
		},
		{
			name: "empty metric name is a missing one", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "", "job", "a")},
			wantMsg: `series {job="a"} has no metric name (label __name__) [strata-missing-metric-name]`,
		},
		{
			name: "invalid metric name", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "1up", "job", "a"), good},
			wantMsg: `series {__name__="1up", job="a"} has invalid metric name "1up" (the legacy charset [a-zA-Z_:][a-zA-Z0-9_:]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8) [strata-invalid-metric-name]`,
			want:    []prompb.TimeSeries{good},
		},
		{
			name: "recording rule names have colons", wantCode: 204,
			in:   []prompb.TimeSeries{series("__name__", "job:up:sum_rate5m", "job", "a")},
			want: []prompb.TimeSeries{series("__name__", "job:up:sum_rate5m", "job", "a")},
		},
		{
			name: "utf8 metric name with utf8 scheme", utf8: true, wantCode: 204,
			in:   []prompb.TimeSeries{series("__name__", "http.server.duration", "k8s.pod", "p-1")},
			want: []prompb.TimeSeries{series("__name__", "http.server.duration", "k8s.pod", "p-1")},
		},
		{
			name: "invalid label name", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "up", "1x", "v")},
			wantMsg: `series {"1x"="v", __name__="up"} has invalid label name "1x" (the legacy charset [a-zA-Z_][a-zA-Z0-9_]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8) [strata-invalid-label-name]`,
		},
		{
			name: "colon in a label name", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "up", "a:b", "v")},
			wantMsg: `series {__name__="up", "a:b"="v"} has invalid label name "a:b" (the legacy charset [a-zA-Z_][a-zA-Z0-9_]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8) [strata-invalid-label-name]`,
		},
		{
			name: "invalid utf8 label name with utf8 scheme", utf8: true, wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "up", "a\xffb", "v")},
			wantMsg: `series {__name__="up", "a\xffb"="v"} has invalid label name "a\xffb" (names must be non-empty valid UTF-8) [strata-invalid-label-name]`,
		},
		{
			name: "invalid utf8 value", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "up", "job", "a\xc3\x28")},
			wantMsg: `series {__name__="up", job="a\xc3("} has a value that is not valid UTF-8 for label "job" [strata-invalid-label-value]`,
		},
		{
			name: "duplicate label names", wantCode: 400,
			in:      []prompb.TimeSeries{series("__name__", "up", "job", "a", "job", "b")},
			wantMsg: `series {__name__="up", job="a", job="b"} has duplicate label name "job" [strata-duplicate-label-names]`,
		},
		{
			name: "too many labels", wantCode: 400,
			limits:  tightLimits(func(l *limits.Limits) { l.MaxLabelNamesPerSeries = 3 }),
			in:      []prompb.TimeSeries{series("__name__", "up", "a", "1", "b", "2", "c", "3"), good},
			wantMsg: `series {__name__="up", a="1", b="2", c="3"} has 4 labels, limit 3 (-validation.max-label-names-per-series, override "max_label_names_per_series") [strata-max-label-names-per-series]`,
			want:    []prompb.TimeSeries{good},
		},
		{
			name: "empty values do not count as labels", wantCode: 204,
			limits: tightLimits(func(l *limits.Limits) { l.MaxLabelNamesPerSeries = 2 }),
			in:     []prompb.TimeSeries{series("__name__", "up", "a", "", "b", "", "job", "a")},
			want:   []prompb.TimeSeries{good},
		},
		{
			name: "label name too long", wantCode: 400,
			limits:  tightLimits(func(l *limits.Limits) { l.MaxLabelNameLength = 8 }),
			in:      []prompb.TimeSeries{series("__name__", "up", "very_long_name", "v")},
			wantMsg: `series {__name__="up", very_long_name="v"} has a label name of 14 bytes, limit 8 (-validation.max-length-label-name, override "max_label_name_length") [strata-label-name-too-long]`,
		},
		{
			name: "label value too long", wantCode: 400,
			limits:  tightLimits(func(l *limits.Limits) { l.MaxLabelValueLength = 8 }),
			in:      []prompb.TimeSeries{series("__name__", "up", "job", "a-long-value")},
			wantMsg: `series {__name__="up", job="a-long-value"} has a value of 12 bytes for label "job", limit 8 (-validation.max-length-label-value, override "max_label_value_length") [strata-label-value-too-long]`,
		},
		{
			name: "metric name too long is a value too long", wantCode: 400,
			limits:  tightLimits(func(l *limits.Limits) { l.MaxLabelValueLength = 8 }),
			in:      []prompb.TimeSeries{series("__name__", "a_long_metric", "job", "a")},
			wantMsg: `series {__name__="a_long_metric", job="a"} has a value of 13 bytes for label "__name__", limit 8 (-validation.max-length-label-value, override "max_label_value_length") [strata-label-value-too-long]`,
		},
		{
			name: "NaN and infinities are values", wantCode: 204,
			in: []prompb.TimeSeries{withSamples(good,
				prompb.Sample{Value: math.NaN(), Timestamp: testNowMs - 3},
				prompb.Sample{Value: math.Float64frombits(value.StaleNaN), Timestamp: testNowMs - 2},
				prompb.Sample{Value: math.Inf(1), Timestamp: testNowMs - 1},
				prompb.Sample{Value: math.Inf(-1), Timestamp: testNowMs})},
			want: []prompb.TimeSeries{withSamples(good,
				prompb.Sample{Value: math.NaN(), Timestamp: testNowMs - 3},
				prompb.Sample{Value: math.Float64frombits(value.StaleNaN), Timestamp: testNowMs - 2},
				prompb.Sample{Value: math.Inf(1), Timestamp: testNowMs - 1},
				prompb.Sample{Value: math.Inf(-1), Timestamp: testNowMs})},
		},
		{
			name: "sample too far in the future", wantCode: 400,
			in: []prompb.TimeSeries{withSamples(good,
				prompb.Sample{Value: 1, Timestamp: testNowMs},
				prompb.Sample{Value: 2, Timestamp: testNowMs + hour})},
			wantMsg: `series {__name__="up", job="a"} has a sample at 2026-11-25T13:00:00Z, 1h0m0s in the future, limit 10m0s (-validation.create-grace-period, override "creation_grace_period") [strata-sample-too-far-in-future]`,
			want:    []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 1, Timestamp: testNowMs})},
		},
		{
			name: "future within the grace period", wantCode: 204,
			in:   []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 1, Timestamp: testNowMs + 9*time.Minute.Milliseconds()})},
			want: []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 1, Timestamp: testNowMs + 9*time.Minute.Milliseconds()})},
		},
		{
			name: "only future samples: nothing to send", wantCode: 400,
			in:      []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 2, Timestamp: testNowMs + hour})},
			wantMsg: `series {__name__="up", job="a"} has a sample at 2026-11-25T13:00:00Z, 1h0m0s in the future, limit 10m0s (-validation.create-grace-period, override "creation_grace_period") [strata-sample-too-far-in-future]`,
		},
		{
			name: "old samples pass without a past limit", wantCode: 204,
			in:   []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 1, Timestamp: 0})},
			want: []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 1, Timestamp: 0})},
		},
		{
			name: "sample too old", wantCode: 400,
			limits: tightLimits(func(l *limits.Limits) { l.PastGracePeriod = 24 * time.Hour }),
			in: []prompb.TimeSeries{withSamples(good,
				prompb.Sample{Value: 1, Timestamp: testNowMs - 48*hour},
				prompb.Sample{Value: 2, Timestamp: testNowMs})},
			wantMsg: `series {__name__="up", job="a"} has a sample at 2026-11-23T12:00:00Z, 48h0m0s in the past, limit 24h0m0s (-validation.past-grace-period, override "past_grace_period") [strata-sample-too-old]`,
			want:    []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: 2, Timestamp: testNowMs})},
		},
		{
			name: "exemplars beyond the limit are dropped silently", wantCode: 204,
			limits: tightLimits(func(l *limits.Limits) { l.MaxExemplarsPerSeries = 2 }),
			in: []prompb.TimeSeries{withExemplars(good,
				exemplar(testNowMs-2, "trace_id", "a"), exemplar(testNowMs-1, "trace_id", "b"), exemplar(testNowMs, "trace_id", "c"))},
			want: []prompb.TimeSeries{withExemplars(good, exemplar(testNowMs-1, "trace_id", "b"), exemplar(testNowMs, "trace_id", "c"))},
		},
		{
			name: "exemplar labels over 128 runes", wantCode: 400,
			in:      []prompb.TimeSeries{withExemplars(good, exemplar(testNowMs, "trace_id", longRunes+longRunes))},
			wantMsg: `series {__name__="up", job="a"} has an exemplar with labels {trace_id="` + strings.Repeat("é", 64) + `"...} of 138 characters, limit 128 (OpenMetrics) [strata-exemplar-labels-too-long]`,
			want:    []prompb.TimeSeries{good},
		},
		{
			name: "exemplar of exactly 128 runes", wantCode: 204,
			in:   []prompb.TimeSeries{withExemplars(good, exemplar(testNowMs, "trace_id", strings.Repeat("é", 120)))},
			want: []prompb.TimeSeries{withExemplars(good, exemplar(testNowMs, "trace_id", strings.Repeat("é", 120)))},
		},
		{
			name: "exemplar without timestamp", wantCode: 400,
			in:      []prompb.TimeSeries{withExemplars(good, exemplar(0, "trace_id", "a"))},
			wantMsg: `series {__name__="up", job="a"} has an exemplar {trace_id="a"} without a timestamp [strata-exemplar-missing-timestamp]`,
			want:    []prompb.TimeSeries{good},
		},
		{
			name: "exemplar with invalid label name", wantCode: 400,
			in:      []prompb.TimeSeries{withExemplars(good, exemplar(testNowMs, "trace-id", "a"))},
			wantMsg: `series {__name__="up", job="a"} has an exemplar with invalid label "trace-id"="a" [strata-exemplar-invalid-labels]`,
			want:    []prompb.TimeSeries{good},
		},
		{
			name: "exemplar only series are forwarded", wantCode: 204,
			in:   []prompb.TimeSeries{withSamples(withExemplars(good, exemplar(testNowMs, "trace_id", "a")))},
			want: []prompb.TimeSeries{withSamples(withExemplars(good, exemplar(testNowMs, "trace_id", "a")))},
		},
		{
			name: "native histograms", wantCode: 204,
			in:   []prompb.TimeSeries{withHists(good, intHist), withHists(series("__name__", "f"), floatHist)},
			want: []prompb.TimeSeries{withHists(good, intHist), withHists(series("__name__", "f"), floatHist)},
		},
		{
			name: "histogram spans do not match buckets", wantCode: 400,
			in:      []prompb.TimeSeries{withHists(good, badHist, intHist)},
			wantMsg: `series {__name__="up", job="a"} has an invalid native histogram at 2026-11-25T12:00:00Z: positive spans cover 2 buckets but 1 bucket values are given [strata-invalid-native-histogram]`,
			want:    []prompb.TimeSeries{withHists(good, intHist)},
		},
		{
			name: "metadata", wantCode: 204,
			in: []prompb.TimeSeries{good}, meta: []prompb.MetricMetadata{meta},
			want: []prompb.TimeSeries{good}, wantMeta: []prompb.MetricMetadata{meta},
		},
		{
			name: "metadata too long", wantCode: 400,
			limits:  tightLimits(func(l *limits.Limits) { l.MaxMetadataLength = 5 }),
			meta:    []prompb.MetricMetadata{meta},
			wantMsg: `metadata for "http_requests_total" has a metric family name of 19 bytes, limit 5 (-validation.max-metadata-length, override "max_metadata_length") [strata-metadata-too-long]`,
		},
		{
			name: "metadata without a name", wantCode: 400,
			in: []prompb.TimeSeries{good}, meta: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, Help: "x"}, meta},
			wantMsg: `metadata of type gauge has no metric family name [strata-metadata-missing-metric-name]`,
			want:    []prompb.TimeSeries{good}, wantMeta: []prompb.MetricMetadata{meta},
		},
		{
			name: "good series of a mixed request are kept", wantCode: 400,
			in: []prompb.TimeSeries{
				series("job", "a"), good, series("__name__", "up", "job", "a", "job", "b"),
				series("__name__", "ok2", "x", "y"), series("__name__", "up", "bad-name", "v"),
			},
			meta:    []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE}},
			wantMsg: `series {job="a"} has no metric name (label __name__) [strata-missing-metric-name]; and 2 more series and 1 more metadata entries rejected`,
			want:    []prompb.TimeSeries{good, series("__name__", "ok2", "x", "y")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			if tc.utf8 {
				cfg.NameValidationScheme = SchemeUTF8
			}
			h := newHarness(t, harnessOpts{cfg: &cfg, limits: tc.limits})
			code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: tc.in, Metadata: tc.meta}))
			require.Equal(t, tc.wantCode, code, msg)
			require.Equal(t, tc.wantMsg, msg)
			if tc.want == nil && tc.wantMeta == nil {
				require.Zero(t, h.ings[0].pushCount(), "nothing to forward")
				return
			}
			tenants, got := h.ings[0].received(t)
			require.Equal(t, []string{"anonymous"}, tenants)
			requireSameSeries(t, tc.want, got.Timeseries)
			require.Equal(t, len(tc.wantMeta), len(got.Metadata))
			for i := range tc.wantMeta {
				require.Equal(t, tc.wantMeta[i].MetricFamilyName, got.Metadata[i].MetricFamilyName)
				require.Equal(t, tc.wantMeta[i].Help, got.Metadata[i].Help)
				require.Equal(t, tc.wantMeta[i].Type, got.Metadata[i].Type)
			}
		})
	}
}

func TestValidateCountsDiscards(t *testing.T) {
	lim := defaultLimits()
	lim.MaxExemplarsPerSeries = 1
	h := newHarness(t, harnessOpts{limits: &lim})
	good := series("__name__", "up", "job", "a")
	good.Exemplars = []prompb.Exemplar{{Value: 1, Timestamp: testNowMs - 1}, {Value: 1, Timestamp: testNowMs}}
	future := withSamples(series("__name__", "up", "job", "b"),
		prompb.Sample{Value: 1, Timestamp: testNowMs + time.Hour.Milliseconds()},
		prompb.Sample{Value: 1, Timestamp: testNowMs + 2*time.Hour.Milliseconds()})
	code, _ := h.push(t, encode(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{good, future, series("job", "c")},
		Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "up"}},
	}))
	require.Equal(t, 400, code)
	m := h.d.m
	require.Equal(t, 2.0, testutil.ToFloat64(m.discardedSamples.WithLabelValues("anonymous", "strata-sample-too-far-in-future")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.discardedSamples.WithLabelValues("anonymous", "strata-missing-metric-name")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.discardedExemplar.WithLabelValues("anonymous", "strata-max-exemplars-per-series")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.receivedSamples.WithLabelValues("anonymous")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.receivedExemplars.WithLabelValues("anonymous")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.receivedMetadata.WithLabelValues("anonymous")))
}

func TestFormatLabelsIsBounded(t *testing.T) {
	var nv []string
	for i := range 40 {
		nv = append(nv, "l"+strings.Repeat("x", i), strings.Repeat("v", 300))
	}
	ts := series(nv...)
	h := newHarness(t, harnessOpts{})
	code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}))
	require.Equal(t, 400, code)
	require.Contains(t, msg, `, ... 8 more} has 40 labels, limit 30`)
	require.Contains(t, msg, `="`+strings.Repeat("v", remotewrite.MessageMaxValueBytes)+`"...`)
	require.Less(t, len(msg), 32*(remotewrite.MessageMaxValueBytes+50))
}
