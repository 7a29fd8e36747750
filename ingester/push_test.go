package ingester

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

func testHistogram(k int) *histogram.Histogram {
	return &histogram.Histogram{
		Schema:          1,
		ZeroThreshold:   0.001,
		ZeroCount:       uint64(2 + k),
		Count:           uint64(9 + 6*k),
		Sum:             18.4 + float64(k),
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{int64(1 + k), 1, -1, 0}, // deltas: 1+k, 2+k, 1+k, 1+k
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{int64(2 + k)},
	}
}

func protoHistogram(h *histogram.Histogram, ts int64) *ingesterpb.Histogram {
	return &ingesterpb.Histogram{
		Count:          &ingesterpb.Histogram_CountInt{CountInt: h.Count},
		Sum:            h.Sum,
		Schema:         h.Schema,
		ZeroThreshold:  h.ZeroThreshold,
		ZeroCount:      &ingesterpb.Histogram_ZeroCountInt{ZeroCountInt: h.ZeroCount},
		NegativeSpans:  protoSpans(h.NegativeSpans),
		NegativeDeltas: h.NegativeBuckets,
		PositiveSpans:  protoSpans(h.PositiveSpans),
		PositiveDeltas: h.PositiveBuckets,
		Timestamp:      ts,
	}
}

func protoFloatHistogram(fh *histogram.FloatHistogram, ts int64) *ingesterpb.Histogram {
	return &ingesterpb.Histogram{
		Count:          &ingesterpb.Histogram_CountFloat{CountFloat: fh.Count},
		Sum:            fh.Sum,
		Schema:         fh.Schema,
		ZeroThreshold:  fh.ZeroThreshold,
		ZeroCount:      &ingesterpb.Histogram_ZeroCountFloat{ZeroCountFloat: fh.ZeroCount},
		NegativeSpans:  protoSpans(fh.NegativeSpans),
		NegativeCounts: fh.NegativeBuckets,
		PositiveSpans:  protoSpans(fh.PositiveSpans),
		PositiveCounts: fh.PositiveBuckets,
		Timestamp:      ts,
	}
}

func protoSpans(spans []histogram.Span) []*ingesterpb.BucketSpan {
	out := make([]*ingesterpb.BucketSpan, len(spans))
	for k, s := range spans {
		out[k] = &ingesterpb.BucketSpan{Offset: s.Offset, Length: s.Length}
	}
	return out
}

func TestPushQueryStreamRoundTrip(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	specials := []float64{0, math.Copysign(0, -1), 1.5, -2.25e300, math.SmallestNonzeroFloat64, math.Inf(1), math.Inf(-1),
		math.Float64frombits(0x7ff8000000000001), math.Float64frombits(value.StaleNaN)}

	const n = 300 // more than one chunk (120 samples each) plus an open head chunk
	floatLabels := lbls("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "idle")
	histLabels := lbls("__name__", "http_request_duration_seconds", "job", "api")
	fhistLabels := lbls("__name__", "rpc_latency_seconds", "job", "api")
	var wantFloats, wantHists, wantFHists []sample
	for k := range n {
		ts := t0 + int64(k)*10000
		v := float64(k) * 1.1
		if k < len(specials) {
			v = specials[k]
		}
		hs, fhs := testHistogram(k), testHistogram(k).ToFloat(nil)
		fhs.Sum += 0.25 // a float histogram that is not an integer one
		// One push per timestamp: the first creates the series, the rest
		// find them with GetRef.
		h.mustPush("tenant-a",
			floats(floatLabels, float64(ts), v),
			&ingesterpb.TimeSeries{Labels: histLabels, Histograms: []*ingesterpb.Histogram{protoHistogram(hs, ts)}},
			&ingesterpb.TimeSeries{Labels: fhistLabels, Histograms: []*ingesterpb.Histogram{protoFloatHistogram(fhs, ts)}},
		)
		wantFloats = append(wantFloats, sample{t: ts, f: v})
		wantHists = append(wantHists, sample{t: ts, h: hs})
		wantFHists = append(wantFHists, sample{t: ts, fh: fhs})
	}

	for _, tc := range []struct {
		name       string
		start, end int64
	}{
		{"all", t0, t0 + n*10000},
		{"middle", t0 + 1000*1000, t0 + 2000*1000},
		{"head chunk only", t0 + 2900*1000, t0 + n*10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.query("tenant-a", tc.start, tc.end)
			require.Len(t, got, 3)
			// Sorted by labels: http_..., node_..., rpc_...
			require.Equal(t, labelString(histLabels), got[0].labels)
			require.Equal(t, labelString(floatLabels), got[1].labels)
			require.Equal(t, labelString(fhistLabels), got[2].labels)

			inRange := func(all []sample) []sample {
				var out []sample
				for _, s := range all {
					if s.t >= tc.start && s.t <= tc.end {
						out = append(out, s)
					}
				}
				return out
			}
			wantF, wantH, wantFH := inRange(wantFloats), inRange(wantHists), inRange(wantFHists)
			require.Len(t, got[1].samples, len(wantF))
			for k, s := range got[1].samples {
				require.Equal(t, wantF[k].t, s.t)
				require.Equal(t, math.Float64bits(wantF[k].f), math.Float64bits(s.f), "sample %d", k)
			}
			require.Len(t, got[0].samples, len(wantH))
			for k, s := range got[0].samples {
				require.Equal(t, wantH[k].t, s.t)
				require.NotNil(t, s.h, "sample %d is not an integer histogram", k)
				s.h.CounterResetHint = wantH[k].h.CounterResetHint // chunks set their own hints
				require.True(t, wantH[k].h.Equals(s.h), "sample %d: want %v, got %v", k, wantH[k].h, s.h)
			}
			require.Len(t, got[2].samples, len(wantFH))
			for k, s := range got[2].samples {
				require.Equal(t, wantFH[k].t, s.t)
				require.NotNil(t, s.fh, "sample %d is not a float histogram", k)
				s.fh.CounterResetHint = wantFH[k].fh.CounterResetHint
				require.True(t, wantFH[k].fh.Equals(s.fh), "sample %d: want %v, got %v", k, wantFH[k].fh, s.fh)
			}
		})
	}
	if got := h.query("tenant-a", t0, t0+n*10000); got[1].chunks < 3 {
		t.Fatalf("want the float series in at least 3 chunks, got %d", got[1].chunks)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("tenant-a", floats(lbls("__name__", "secret", "team", "a"), float64(t0), 42))
	h.pushMetadata(t, "tenant-a", "secret")

	ctx := context.Background()
	require.Len(t, h.query("tenant-a", t0, t0+1), 1)
	require.Empty(t, h.query("tenant-b", t0, t0+1))
	names, err := h.client.LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: "tenant-b", StartMs: t0, EndMs: t0 + 1})
	require.NoError(t, err)
	require.Empty(t, names.Names)
	md, err := h.client.Metadata(ctx, &ingesterpb.MetadataRequest{Tenant: "tenant-b"})
	require.NoError(t, err)
	require.Empty(t, md.Metadata)

	// B's own data does not leak into A either.
	h.mustPush("tenant-b", floats(lbls("__name__", "other", "team", "b"), float64(t0), 1))
	got := h.query("tenant-a", t0, t0+1)
	require.Len(t, got, 1)
	require.Equal(t, `{__name__="secret", team="a"}`, got[0].labels)
}

func TestPushRejections(t *testing.T) {
	up := lbls("__name__", "up", "job", "a")
	for _, tc := range []struct {
		name string
		args []string
		// first is pushed and must succeed; then second.
		first, second []*ingesterpb.TimeSeries
		wantErr       []string // substrings of the message; none: success
		wantRejected  int64
		wantStored    int // samples of {__name__="up"} stored afterwards
	}{
		{
			name:       "in order",
			first:      []*ingesterpb.TimeSeries{floats(up, float64(t0), 1)},
			second:     []*ingesterpb.TimeSeries{floats(up, float64(t0+1000), 2)},
			wantStored: 2,
		},
		{
			name:   "out of order without a window",
			first:  []*ingesterpb.TimeSeries{floats(up, float64(t0+60000), 1)},
			second: []*ingesterpb.TimeSeries{floats(up, float64(t0), 2, float64(t0+120000), 3)},
			wantErr: []string{
				`out of order sample for series {__name__="up", job="a"} at 2026-11-25T03:00:00Z`,
				"-ingester.out-of-order-time-window=0s", "[strata-sample-out-of-order]",
			},
			wantRejected: 1,
			wantStored:   2, // the sample after the rejected one is kept
		},
		{
			name:       "out of order within the window",
			args:       []string{"-ingester.out-of-order-time-window=10m"},
			first:      []*ingesterpb.TimeSeries{floats(up, float64(t0+60000), 1)},
			second:     []*ingesterpb.TimeSeries{floats(up, float64(t0), 2)},
			wantStored: 2,
		},
		{
			name:         "older than the window",
			args:         []string{"-ingester.out-of-order-time-window=10m"},
			first:        []*ingesterpb.TimeSeries{floats(up, float64(t0+3600000), 1)},
			second:       []*ingesterpb.TimeSeries{floats(up, float64(t0), 2)},
			wantErr:      []string{"sample older than the out-of-order window", "[strata-sample-too-old]"},
			wantRejected: 1,
			wantStored:   1,
		},
		{
			name:         "too old for the head",
			first:        []*ingesterpb.TimeSeries{floats(up, float64(t0+3*3600000), 1)},
			second:       []*ingesterpb.TimeSeries{floats(lbls("__name__", "up", "job", "b"), float64(t0), 2)},
			wantErr:      []string{`sample too old for the head for series {__name__="up", job="b"}`, "[strata-sample-out-of-bounds]"},
			wantRejected: 1,
			wantStored:   1,
		},
		{
			name:  "duplicate timestamp keeps the rest of the batch",
			first: []*ingesterpb.TimeSeries{floats(up, float64(t0), 1)},
			second: []*ingesterpb.TimeSeries{
				floats(lbls("__name__", "up", "job", "b"), float64(t0), 1),
				floats(up, float64(t0), 99, float64(t0+1000), 2),
				floats(lbls("__name__", "up", "job", "c"), float64(t0), 1),
			},
			wantErr:      []string{"sample with a new value for an existing timestamp", "existing 1, new value 99", "[strata-sample-duplicate-timestamp]"},
			wantRejected: 1,
			wantStored:   4,
		},
		{
			name:       "identical resend is not an error",
			first:      []*ingesterpb.TimeSeries{floats(up, float64(t0), 1)},
			second:     []*ingesterpb.TimeSeries{floats(up, float64(t0), 1)},
			wantStored: 1,
		},
		{
			name:  "invalid histogram",
			first: []*ingesterpb.TimeSeries{floats(up, float64(t0), 1)},
			second: []*ingesterpb.TimeSeries{{
				Labels: lbls("__name__", "h"),
				Histograms: []*ingesterpb.Histogram{{
					Count: &ingesterpb.Histogram_CountInt{CountInt: 1}, Schema: 0, Timestamp: t0,
					PositiveSpans: []*ingesterpb.BucketSpan{{Offset: 0, Length: 3}}, PositiveDeltas: []int64{1},
				}},
			}},
			wantErr:      []string{`invalid native histogram for series {__name__="h"}`, "[strata-invalid-native-histogram]"},
			wantRejected: 1,
			wantStored:   1,
		},
		{
			name:         "many rejections are summarised",
			first:        []*ingesterpb.TimeSeries{floats(up, float64(t0+60000), 1)},
			second:       []*ingesterpb.TimeSeries{floats(up, float64(t0), 1, float64(t0+1), 1, float64(t0+2), 1, float64(t0+3), 1, float64(t0+4), 1)},
			wantErr:      []string{"; 2 more rejected"},
			wantRejected: 5,
			wantStored:   1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, defaultConfig(t, tc.args...), t.TempDir())
			h.mustPush("t", tc.first...)
			_, err := h.push("t", tc.second...)
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
			} else {
				code, det := errDetails(t, err)
				require.Equal(t, codes.InvalidArgument, code)
				require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
				require.Equal(t, tc.wantRejected, det.RejectedSamples)
				for _, want := range tc.wantErr {
					require.Contains(t, err.Error(), want)
				}
			}
			var stored int
			for _, s := range h.query("t", 0, t0+24*3600000, matcher(ingesterpb.LabelMatcher_EQ, "__name__", "up")) {
				stored += len(s.samples)
			}
			require.Equal(t, tc.wantStored, stored)
		})
	}
}

func TestPushBadBody(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	_, err := h.client.Push(context.Background(), &ingesterpb.PushRequest{Tenant: "t", WriteRequest: []byte{0x0a, 0xff}})
	code, det := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
	require.Contains(t, err.Error(), "decode write request")
}

func TestPushUnsortedLabels(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("t", floats(lbls("job", "a", "__name__", "up", "empty", ""), float64(t0), 1))
	h.mustPush("t", floats(lbls("__name__", "up", "job", "a"), float64(t0+1000), 2))
	got := h.query("t", t0, t0+1000)
	require.Len(t, got, 1, "one series whatever the label order, empty labels dropped")
	require.Equal(t, `{__name__="up", job="a"}`, got[0].labels)
	require.Len(t, got[0].samples, 2)
}

func TestPushResponseCounts(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	resp, err := h.pushRequest("t", &ingesterpb.WriteRequest{
		Timeseries: []*ingesterpb.TimeSeries{
			floats(lbls("__name__", "a"), float64(t0), 1, float64(t0+1), 2),
			{Labels: lbls("__name__", "h"), Histograms: []*ingesterpb.Histogram{protoHistogram(testHistogram(0), t0)}},
			{Labels: lbls("__name__", "a"), Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "abc"), Value: 1, Timestamp: t0}}},
		},
		Metadata: []*ingesterpb.MetricMetadata{{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "a", Help: "A."}},
	})
	require.NoError(t, err)
	require.Equal(t, int64(2), resp.SamplesAppended)
	require.Equal(t, int64(1), resp.HistogramsAppended)
	require.Equal(t, int64(1), resp.ExemplarsAppended)
	require.Equal(t, int64(1), resp.MetadataUpdated)
}

func TestExemplars(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	ctx := context.Background()
	series := lbls("__name__", "http_requests_total", "job", "api")
	// As Prometheus sends them: the sample and the exemplar in separate entries.
	h.mustPush("t",
		floats(series, float64(t0), 1),
		&ingesterpb.TimeSeries{Labels: series, Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "abc123"), Value: 1, Timestamp: t0}}},
	)
	// Resent (out of order / duplicate) and unknown-series exemplars are dropped quietly.
	h.mustPush("t",
		&ingesterpb.TimeSeries{Labels: series, Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "old"), Value: 1, Timestamp: t0 - 3600000}}},
		&ingesterpb.TimeSeries{Labels: lbls("__name__", "nope"), Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", "x"), Value: 1, Timestamp: t0}}},
	)
	// An invalid exemplar fails the push as bad input; its sample is kept.
	_, err := h.push("t", &ingesterpb.TimeSeries{
		Labels:    series,
		Samples:   []*ingesterpb.Sample{{Value: 2, Timestamp: t0 + 1000}},
		Exemplars: []*ingesterpb.Exemplar{{Labels: lbls("trace_id", strings.Repeat("x", 200)), Value: 2, Timestamp: t0 + 1000}},
	})
	code, det := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
	require.Zero(t, det.RejectedSamples)
	require.Contains(t, err.Error(), "[strata-invalid-exemplar]")
	require.Len(t, h.query("t", t0, t0+1000)[0].samples, 2)

	for _, tc := range []struct {
		name string
		sets []*ingesterpb.MatcherSet
		want int
	}{
		{"match", []*ingesterpb.MatcherSet{{Matchers: []*ingesterpb.LabelMatcher{matcher(ingesterpb.LabelMatcher_EQ, "job", "api")}}}, 1},
		{"no match", []*ingesterpb.MatcherSet{{Matchers: []*ingesterpb.LabelMatcher{matcher(ingesterpb.LabelMatcher_EQ, "job", "web")}}}, 0},
		{"union", []*ingesterpb.MatcherSet{
			{Matchers: []*ingesterpb.LabelMatcher{matcher(ingesterpb.LabelMatcher_EQ, "job", "web")}},
			{Matchers: []*ingesterpb.LabelMatcher{matcher(ingesterpb.LabelMatcher_RE, "__name__", "http_.*")}},
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.client.QueryExemplars(ctx, &ingesterpb.ExemplarsRequest{Tenant: "t", StartMs: t0 - 1000, EndMs: t0 + 1000, MatcherSets: tc.sets})
			require.NoError(t, err)
			require.Len(t, resp.Series, tc.want)
			if tc.want == 1 {
				require.Equal(t, labelString(series), labelString(resp.Series[0].Labels))
				require.Len(t, resp.Series[0].Exemplars, 1)
				e := resp.Series[0].Exemplars[0]
				require.Equal(t, `{trace_id="abc123"}`, labelString(e.Labels))
				require.Equal(t, t0, e.Timestamp)
				require.Equal(t, 1.0, e.Value)
			}
		})
	}
}

func (h *harness) pushMetadata(t testing.TB, tenantID string, families ...string) {
	t.Helper()
	_, err := h.pushRequest(tenantID, metadataRequest(families...))
	require.NoError(t, err)
}

func metadataRequest(families ...string) *ingesterpb.WriteRequest {
	wr := &ingesterpb.WriteRequest{}
	for _, f := range families {
		wr.Metadata = append(wr.Metadata, &ingesterpb.MetricMetadata{Type: ingesterpb.MetricMetadata_GAUGE, MetricFamilyName: f, Help: "Help of " + f + ".", Unit: "seconds"})
	}
	return wr
}

func TestMetadata(t *testing.T) {
	h := start(t, defaultConfig(t, "-ingester.max-metadata-per-tenant=3"), t.TempDir())
	ctx := context.Background()
	h.pushMetadata(t, "t", "c_metric", "a_metric", "b_metric")
	// A new entry of a family goes before the old one (no per-family limit
	// without limits); a fourth family is over the cap.
	_, err := h.pushRequest("t", &ingesterpb.WriteRequest{Metadata: []*ingesterpb.MetricMetadata{
		{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "a_metric", Help: "New help."},
		{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "d_metric", Help: "Dropped."},
	}, Timeseries: []*ingesterpb.TimeSeries{{
		Labels:  []*ingesterpb.Label{{Name: "__name__", Value: "d_metric"}},
		Samples: []*ingesterpb.Sample{{Timestamp: 1000, Value: 1}},
	}}})
	// The push is refused as bad input naming the limit, and what it could
	// keep is kept: a_metric's new entry and the sample.
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.ErrorContains(t, err, `1 metadata entries of new metric families not kept: the tenant already has metadata for 3 metric families, its limit (-ingester.max-metadata-per-tenant, override "max_metadata_per_user"); samples were stored [strata-max-metadata-per-user]`)
	require.Len(t, h.query("t", 0, 2000), 1)

	for _, tc := range []struct {
		name  string
		req   *ingesterpb.MetadataRequest
		names []string
	}{
		{"all, sorted", &ingesterpb.MetadataRequest{Tenant: "t"}, []string{"a_metric", "a_metric", "b_metric", "c_metric"}},
		{"one", &ingesterpb.MetadataRequest{Tenant: "t", Metric: "b_metric"}, []string{"b_metric"}},
		{"unknown", &ingesterpb.MetadataRequest{Tenant: "t", Metric: "d_metric"}, nil},
		{"limit", &ingesterpb.MetadataRequest{Tenant: "t", Limit: 2}, []string{"a_metric", "a_metric", "b_metric"}},
		{"limit per metric", &ingesterpb.MetadataRequest{Tenant: "t", LimitPerMetric: 1}, []string{"a_metric", "b_metric", "c_metric"}},
		{"other tenant", &ingesterpb.MetadataRequest{Tenant: "u"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := h.client.Metadata(ctx, tc.req)
			require.NoError(t, err)
			var names []string
			for _, m := range resp.Metadata {
				names = append(names, m.MetricFamilyName)
			}
			require.Equal(t, tc.names, names)
		})
	}
	resp, err := h.client.Metadata(ctx, &ingesterpb.MetadataRequest{Tenant: "t", Metric: "a_metric"})
	require.NoError(t, err)
	require.Equal(t, ingesterpb.MetricMetadata_COUNTER, resp.Metadata[0].Type)
	require.Equal(t, "New help.", resp.Metadata[0].Help)
	require.Empty(t, resp.Metadata[0].Unit)
	require.Len(t, resp.Metadata, 2)
	require.Equal(t, "Help of a_metric.", resp.Metadata[1].Help)
}

// TestPushRefusesFarFuture: whoever calls Push, a sample further ahead than
// the creation grace period (plus clock skew) is refused, naming the
// series and the bound, and never reaches the head; the rest is stored.
func TestPushRefusesFarFuture(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	now := time.Now().UnixMilli()
	tenYears := time.Now().AddDate(10, 0, 0).UnixMilli()
	_, err := h.push("t",
		floats(lbls("__name__", "up", "job", "now"), float64(now), 1),
		floats(lbls("__name__", "up", "job", "future"), float64(tenYears), 1),
	)
	code, det := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
	require.Contains(t, err.Error(), `sample too far in the future for series {__name__="up", job="future"}`)
	require.Contains(t, err.Error(), "plus 1m0s of clock skew ahead of this ingester's clock [strata-sample-too-far-in-future]")
	require.Len(t, h.query("t", now, now+1), 1, "the sample of now is stored")
	require.Empty(t, h.query("t", tenYears-1, tenYears+1), "the future one is not")

	// The head still takes ordinary samples: nothing blocks the tenant.
	h.mustPush("t", floats(lbls("__name__", "up", "job", "now"), float64(now+1000), 2))
}

// TestRejectionMessageBounded: a rejected series with huge label values
// and many labels is printed cut, as the distributor prints it, so a hostile
// series cannot make a hostile error message.
func TestRejectionMessageBounded(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	kv := []string{"__name__", "up", "huge", strings.Repeat("v", 1<<20)}
	for k := range 60 {
		kv = append(kv, fmt.Sprintf("l%02d", k), "x")
	}
	ls := lbls(kv...)
	h.mustPush("t", floats(ls, float64(t0+1000), 1))
	_, err := h.push("t", floats(ls, float64(t0), 2))
	require.ErrorContains(t, err, `out of order sample for series {__name__="up", huge="`+strings.Repeat("v", remotewrite.MessageMaxValueBytes)+`"..., l00="x"`)
	require.ErrorContains(t, err, ", ... 30 more}")
	require.Less(t, len(err.Error()), 2048)
}

// TestPushOrderWithinRequest: without an out-of-order window a series'
// samples must increase within a request; the others are refused, naming
// the series, instead of vanishing at commit after the acknowledgement.
// With a window the same request is stored whole.
func TestPushOrderWithinRequest(t *testing.T) {
	series := floats(lbls("__name__", "up", "job", "a"), float64(t0+1000), 1, float64(t0), 2, float64(t0+1000), 3, float64(t0+2000), 4)
	h := start(t, defaultConfig(t), t.TempDir())
	_, err := h.push("t", series)
	code, det := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
	require.Contains(t, err.Error(), `out of order sample for series {__name__="up", job="a"}`)
	require.Contains(t, err.Error(), "[strata-sample-duplicate-timestamp]")
	got := h.query("t", t0, t0+3000)
	require.Len(t, got, 1)
	require.Len(t, got[0].samples, 2, "the samples in order are stored: %v", got[0].samples)

	cfg := defaultConfig(t)
	cfg.OutOfOrderTimeWindow = time.Hour
	h = start(t, cfg, t.TempDir())
	series = floats(lbls("__name__", "up", "job", "a"), float64(t0+1000), 1, float64(t0), 2, float64(t0+2000), 4)
	h.mustPush("t", series)
	got = h.query("t", t0, t0+3000)
	require.Len(t, got, 1)
	require.Len(t, got[0].samples, 3, "with an out-of-order window every sample is kept")
}
