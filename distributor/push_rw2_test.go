package distributor

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// v2Series is one series of a 2.0 request, built from names and values.
type v2Series struct {
	labels     []string
	samples    []writev2.Sample
	histograms []writev2.Histogram
	exemplars  [][]string // labels of exemplars at testNowMs, value 0.5
	meta       *prompb.MetricMetadata
}

// encodeV2 builds, marshals and snappy-compresses a 2.0 request.
func encodeV2(t testing.TB, ss ...v2Series) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	refs := func(nv []string) []uint32 {
		var out []uint32
		for _, s := range nv {
			out = append(out, st.Symbolize(s))
		}
		return out
	}
	var req writev2.Request
	for _, s := range ss {
		ts := writev2.TimeSeries{LabelsRefs: refs(s.labels), Samples: s.samples, Histograms: s.histograms}
		for _, e := range s.exemplars {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{LabelsRefs: refs(e), Value: 0.5, Timestamp: testNowMs})
		}
		if s.meta != nil {
			ts.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(s.meta.Type), HelpRef: st.Symbolize(s.meta.Help), UnitRef: st.Symbolize(s.meta.Unit)}
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

func newPushRequestV2(body []byte) *http.Request {
	req := newPushRequest(body)
	req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	return req
}

// TestPushRW2 runs remote-write 2.0 requests through the handler: status,
// message, the written-counts headers, and what reached the ingester,
// which must be what the 1.0 twin of the request would have sent.
func TestPushRW2(t *testing.T) {
	lim := defaultLimits()
	h := newHarness(t, harnessOpts{limits: &lim})
	sample := func(v float64) []writev2.Sample {
		return []writev2.Sample{{Value: v, Timestamp: testNowMs, StartTimestamp: testNowMs - 60000}}
	}
	hist := writev2.FromIntHistogram(testNowMs-60000, testNowMs, &histogram.Histogram{
		Count: 5, Sum: 2.5, Schema: 1, ZeroThreshold: 1e-128, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0},
	})
	fhist := writev2.FromFloatHistogram(0, testNowMs, &histogram.FloatHistogram{
		Count: 3, Sum: 1, Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.5, 1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 2},
	})
	badHist := hist
	badHist.PositiveDeltas = []int64{2}
	meta := &prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, Help: "Requests.", Unit: "requests"}

	for _, tc := range []struct {
		name     string
		body     []byte
		reply    func() // sets the fake ingester's reply
		wantCode int
		wantMsg  string
		written  [3]int // samples, histograms, exemplars; -1: no headers
		want     []prompb.TimeSeries
		wantMeta []prompb.MetricMetadata
	}{
		{name: "samples, histograms, exemplars and metadata", wantCode: 204, written: [3]int{1, 2, 1},
			body: encodeV2(t,
				v2Series{labels: []string{"__name__", "http_requests_total", "job", "api"}, samples: sample(7), exemplars: [][]string{{"trace_id", "abc"}}, meta: meta},
				v2Series{labels: []string{"__name__", "rpc_seconds", "job", "api"}, histograms: []writev2.Histogram{hist, fhist}}),
			want: []prompb.TimeSeries{
				{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}}, Samples: []prompb.Sample{{Value: 7, Timestamp: testNowMs}},
					Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 0.5, Timestamp: testNowMs}}},
				{Labels: []prompb.Label{{Name: "__name__", Value: "rpc_seconds"}, {Name: "job", Value: "api"}}, Histograms: []prompb.Histogram{
					prompb.FromIntHistogram(testNowMs, hist.ToIntHistogram()), prompb.FromFloatHistogram(testNowMs, fhist.ToFloatHistogram())}},
			},
			wantMeta: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.", Unit: "requests"}}},
		{name: "partial failure: headers count what was kept", wantCode: 400, written: [3]int{1, 0, 0},
			wantMsg: `series {__name__="rpc_seconds"} has an invalid native histogram at 2026-11-25T12:00:00Z: positive spans cover 2 buckets but 1 bucket values are given [strata-invalid-native-histogram]`,
			body: encodeV2(t,
				v2Series{labels: []string{"__name__", "up"}, samples: sample(1)},
				v2Series{labels: []string{"__name__", "rpc_seconds"}, histograms: []writev2.Histogram{badHist}}),
			want: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs}}}}},
		{name: "empty label name", wantCode: 400, written: [3]int{1, 0, 0},
			wantMsg: `series {""="x", __name__="up"} has invalid label name "" (the legacy charset [a-zA-Z_][a-zA-Z0-9_]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8) [strata-invalid-label-name]`,
			body: encodeV2(t,
				v2Series{labels: []string{"__name__", "up", "", "x"}, samples: sample(1)},
				v2Series{labels: []string{"__name__", "ok"}, samples: sample(2)}),
			want: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "ok"}}, Samples: []prompb.Sample{{Value: 2, Timestamp: testNowMs}}}}},
		{name: "empty metric name", wantCode: 400, written: [3]int{0, 0, 0},
			wantMsg: `series {job="a"} has no metric name (label __name__) [strata-missing-metric-name]`,
			body:    encodeV2(t, v2Series{labels: []string{"__name__", "", "job", "a"}, samples: sample(1)})},
		{name: "label reference outside the symbols table", wantCode: 400, written: [3]int{-1},
			wantMsg: `decode write request v2: timeseries 1 {__name__="up"}: labels_refs references symbol 200, but the symbols table has 3 entries [strata-invalid-symbol-reference]`,
			body: snappy.Encode(nil, mustMarshalV2(t, &writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{
				{LabelsRefs: []uint32{1, 2}, Samples: sample(1)},
				{LabelsRefs: []uint32{1, 2, 200, 1}, Samples: sample(1)},
			}}))},
		{name: "odd label references", wantCode: 400, written: [3]int{-1},
			wantMsg: `decode write request v2: timeseries 0 {}: labels_refs has an odd number of references: they must be name/value pairs [strata-invalid-symbol-reference]`,
			body:    snappy.Encode(nil, mustMarshalV2(t, &writev2.Request{Symbols: []string{"", "__name__"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1}}}}))},
		{name: "truncated protobuf", wantCode: 400, written: [3]int{-1},
			wantMsg: `decode write request v2: timeseries: length 40 exceeds remaining 3 bytes at offset 6 [strata-invalid-protobuf]`,
			body:    snappy.Encode(nil, append(mustMarshalV2(t, &writev2.Request{Symbols: []string{"", "a"}}), 0x2a, 40, 1, 2, 3))},
		{name: "ingester failure: nothing written", wantCode: 500, written: [3]int{0, 0, 0},
			reply:   func() { h.ings[0].reply = replyCode(codes.Unavailable, "down") },
			wantMsg: "", // checked by prefix below
			body:    encodeV2(t, v2Series{labels: []string{"__name__", "up"}, samples: sample(1)}),
			want:    []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs}}}}},
		{name: "ingester rejects some: partial failure", wantCode: 400, written: [3]int{1, 0, 0},
			reply: func() {
				h.ings[0].reply = replyClass(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, "out of order [strata-sample-out-of-order]")
			},
			wantMsg: "", // checked by prefix below
			body:    encodeV2(t, v2Series{labels: []string{"__name__", "up"}, samples: sample(1)}),
			want:    []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.ings[0].reply = nil
			if tc.reply != nil {
				tc.reply()
			}
			before := h.ings[0].pushCount()
			rec := httptest.NewRecorder()
			h.d.PushHandler().ServeHTTP(rec, newPushRequestV2(tc.body))
			msg := rec.Body.String()
			require.Equal(t, tc.wantCode, rec.Code, msg)
			if tc.wantMsg != "" {
				require.Equal(t, tc.wantMsg+"\n", msg)
			}
			hdr := rec.Header()
			if tc.written[0] < 0 {
				require.Empty(t, hdr.Get(headerSamplesWritten), "a body that was not decoded gets no counts")
			} else {
				require.Equal(t, strconv.Itoa(tc.written[0]), hdr.Get(headerSamplesWritten))
				require.Equal(t, strconv.Itoa(tc.written[1]), hdr.Get(headerHistogramsWritten))
				require.Equal(t, strconv.Itoa(tc.written[2]), hdr.Get(headerExemplarsWritten))
			}
			if tc.want == nil && tc.wantMeta == nil {
				require.Equal(t, before, h.ings[0].pushCount(), "nothing forwarded")
				return
			}
			require.Equal(t, before+1, h.ings[0].pushCount())
			h.ings[0].mu.Lock()
			last := h.ings[0].pushes[before]
			h.ings[0].mu.Unlock()
			var got prompb.WriteRequest
			require.NoError(t, got.Unmarshal(last.WriteRequest))
			requireSameSeries(t, tc.want, got.Timeseries)
			require.Equal(t, tc.wantMeta, got.Metadata)
		})
	}
	h.ings[0].reply = nil

	// The 1.0 path is unchanged: the same handler still takes 1.0.
	code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(5)}))
	require.Equal(t, 204, code, msg)
}

func mustMarshalV2(t testing.TB, r *writev2.Request) []byte {
	t.Helper()
	b, err := r.Marshal()
	require.NoError(t, err)
	return b
}
