package distributor

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/remotewrite"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz/FuzzPushBody")

// FuzzPushBody runs the push path (decompress, decode, validate, shard,
// encode) on arbitrary bodies: it must not panic nor allocate beyond the
// configured limits, what it keeps must obey every rule, and the bytes an
// ingester would receive must decode to exactly the series it kept.
//
//	go test ./distributor -run '^$' -fuzz FuzzPushBody -fuzztime 1m
func FuzzPushBody(f *testing.F) {
	f.Add(snappy.Encode(nil, nil))
	cfg := defaultConfig()
	cfg.MaxRecvMsgSize = 64 << 10 // keeps each run fast; the limit itself is tested
	h := newHarness(f, harnessOpts{cfg: &cfg})
	d := h.d
	f.Fuzz(func(t *testing.T, body []byte) {
		pb := d.getBody()
		defer d.putBody(pb)
		st := d.states.Get().(*pushState)
		defer d.putState(st)
		st.req = pb.req
		pb.body = append(pb.body[:0], body...)
		if err := d.decompress(pb); err != nil {
			require.Equal(t, 1, strings.Count(err.Error(), "[strata-"), "error without an id: %v", err)
			return
		}
		require.LessOrEqual(t, len(pb.raw), cfg.MaxRecvMsgSize)
		// Every body is tried as 1.0 and, when that fails, as 2.0: both
		// decoders fill the same request, which the rest must keep to the
		// same rules.
		if err := decodeRW1(pb.raw, pb.req); err != nil {
			if err := d.decodeRW2(pb.raw, pb.req); err != nil {
				require.Equal(t, 1, strings.Count(err.Error(), "[strata-"), "error without an id: %v", err)
				return
			}
		}
		// Decoding allocates in proportion to the body: every series and
		// every label takes at least two bytes of it.
		require.LessOrEqual(t, len(st.req.Series), len(pb.raw)/2)
		st.val.reset(d.limits.For("fuzz"), false, testNow)
		st.val.validate(st.req)
		if err := st.val.err(); err != nil {
			require.True(t, strings.HasSuffix(err.Error(), "rejected") || strings.HasSuffix(err.Error(), "]"), "message %q", err)
		}
		checkKept(t, st.req)
		if len(st.req.Series)+len(st.req.Metadata) == 0 {
			return
		}
		require.NoError(t, d.shard(st, "fuzz"))
		require.Len(t, st.batches, 1)
		var got remotewrite.Request
		require.NoError(t, remotewrite.Decode(*st.batches[0].buf, &got))
		require.Equal(t, canonRequest(st.req), canonRequest(&got))
	})
}

// checkKept asserts the rules on everything validation kept.
func checkKept(t *testing.T, r *remotewrite.Request) {
	lim := defaultLimits()
	for _, s := range r.Series {
		require.Positive(t, len(s.Samples)+len(s.Histograms)+len(s.Exemplars))
		require.LessOrEqual(t, len(s.Labels), lim.MaxLabelNamesPerSeries)
		hasName := false
		for i, l := range s.Labels {
			require.NotEmpty(t, l.Value)
			require.True(t, utf8.ValidString(l.Value))
			if i > 0 {
				require.Less(t, s.Labels[i-1].Name, l.Name, "sorted, no duplicates")
			}
			if l.Name == metricNameLabel {
				hasName = true
				require.True(t, remotewrite.LegacyName(l.Value, true))
			} else {
				require.True(t, remotewrite.LegacyName(l.Name, false))
			}
		}
		require.True(t, hasName)
		for _, x := range s.Samples {
			require.LessOrEqual(t, x.Timestamp, testNowMs+lim.CreationGracePeriod.Milliseconds())
		}
		require.LessOrEqual(t, len(s.Exemplars), lim.MaxExemplarsPerSeries)
	}
	for _, m := range r.Metadata {
		require.NotEmpty(t, m.FamilyName)
	}
}

// canonRequest prints r with floats as bits, so that NaN payloads and -0
// compare exactly.
func canonRequest(r *remotewrite.Request) string {
	var b strings.Builder
	fl := func(v float64) string { return strconv.FormatUint(math.Float64bits(v), 16) }
	fls := func(vs []float64) string {
		parts := make([]string, len(vs))
		for i, v := range vs {
			parts[i] = fl(v)
		}
		return strings.Join(parts, ",")
	}
	for _, s := range r.Series {
		fmt.Fprintf(&b, "series %q\n", s.Labels)
		for _, x := range s.Samples {
			fmt.Fprintf(&b, " sample %d %s\n", x.Timestamp, fl(x.Value))
		}
		for _, e := range s.Exemplars {
			fmt.Fprintf(&b, " exemplar %q %d %s\n", e.Labels, e.Timestamp, fl(e.Value))
		}
		for _, h := range s.Histograms {
			fmt.Fprintf(&b, " histogram float=%v count=%d/%s sum=%s schema=%d zt=%s zc=%d/%s neg=%v/%v/%s pos=%v/%v/%s reset=%d ts=%d custom=%s\n",
				h.IsFloat, h.CountInt, fl(h.CountFloat), fl(h.Sum), h.Schema, fl(h.ZeroThreshold), h.ZeroCountInt, fl(h.ZeroCountFloat),
				h.NegativeSpans, h.NegativeDeltas, fls(h.NegativeCounts), h.PositiveSpans, h.PositiveDeltas, fls(h.PositiveCounts),
				h.ResetHint, h.Timestamp, fls(h.CustomValues))
		}
	}
	for _, m := range r.Metadata {
		fmt.Fprintf(&b, "metadata %d %q %q %q\n", m.Type, m.FamilyName, m.Help, m.Unit)
	}
	return b.String()
}

// TestFuzzCorpus rewrites the seed corpus with -update and
// otherwise checks that it is there (go test runs every seed through
// FuzzPushBody).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzPushBody")
	if !*update {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(entries), 10)
		return
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, body := range fuzzSeeds(t) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", body)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
}

func fuzzSeeds(t *testing.T) map[string][]byte {
	enc := func(wr *prompb.WriteRequest) []byte { return encode(t, wr) }
	raw, err := (&prompb.WriteRequest{Timeseries: nodeSeries(30)}).Marshal()
	require.NoError(t, err)

	withHist := series("__name__", "http_request_duration_seconds", "job", "api")
	withHist.Samples = nil
	withHist.Histograms = []prompb.Histogram{
		prompb.FromIntHistogram(testNowMs, &histogram.Histogram{
			Count: 12, Sum: 3.5, Schema: 3, ZeroThreshold: 1e-128, ZeroCount: 2,
			PositiveSpans: []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}}, PositiveBuckets: []int64{3, -1, 2},
			NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []int64{4},
		}),
		prompb.FromFloatHistogram(testNowMs+1, &histogram.FloatHistogram{
			CounterResetHint: histogram.GaugeType, Count: 7.5, Sum: -2, Schema: -53, CustomValues: []float64{0.1, 1, 10},
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []float64{1.5, 4, 2},
		}),
	}
	withEx := series("__name__", "rpc_calls_total", "service", "cart")
	withEx.Exemplars = []prompb.Exemplar{
		{Labels: []prompb.Label{{Name: "trace_id", Value: "4bf92f3577b34da6a3ce929d0e0e4736"}}, Value: 0.25, Timestamp: testNowMs},
		{Labels: []prompb.Label{{Name: "trace_id", Value: "00f067aa0ba902b7"}}, Value: 1, Timestamp: testNowMs + 1},
	}
	special := withSamples(series("__name__", "weird_values"),
		prompb.Sample{Value: math.NaN(), Timestamp: testNowMs},
		prompb.Sample{Value: math.Float64frombits(value.StaleNaN), Timestamp: testNowMs + 1},
		prompb.Sample{Value: math.Inf(-1), Timestamp: testNowMs + 2},
		prompb.Sample{Value: math.Copysign(0, -1), Timestamp: testNowMs + 3})

	return map[string][]byte{
		"node_exporter":    enc(&prompb.WriteRequest{Timeseries: nodeSeries(30)}),
		"histograms":       enc(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{withHist}}),
		"exemplars":        enc(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{withEx}}),
		"special_values":   enc(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{special}}),
		"metadata":         enc(&prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "http_request_duration_seconds", Help: "Latency.", Unit: "seconds"}}}),
		"unsorted_and_bad": enc(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("job", "a", "__name__", "up", "empty", ""), series("__name__", "up", "a", "1", "a", "2"), series("job", "x"), series("__name__", "bad-name"), series("__name__", "up", "v", "\xff")}}),
		"future":           enc(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{withSamples(series("__name__", "up"), prompb.Sample{Value: 1, Timestamp: math.MaxInt64})}}),
		"empty_request":    snappy.Encode(nil, nil),
		"zero_bytes":       {},
		"garbage":          []byte("definitely not snappy"),
		"truncated_snappy": snappy.Encode(nil, raw)[:100],
		"huge_header":      {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00},
		"truncated_proto":  snappy.Encode(nil, raw[:len(raw)-7]),
		"wrong_wire_type":  snappy.Encode(nil, []byte{0x0d, 0x00, 0x00, 0x00, 0x00}),
		"deep_lengths":     snappy.Encode(nil, slices.Repeat([]byte{0x0a, 0x7f}, 64)),
		"rw2_series":       encodeV2(t, v2Series{labels: []string{"__name__", "up", "job", "a"}, samples: []writev2.Sample{{Value: 1, Timestamp: testNowMs, StartTimestamp: testNowMs - 1000}}, exemplars: [][]string{{"trace_id", "x"}}, meta: &prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, Help: "Up."}}),
		"rw2_histogram":    encodeV2(t, v2Series{labels: []string{"__name__", "h", "", "x"}, histograms: []writev2.Histogram{writev2.FromIntHistogram(0, testNowMs, &histogram.Histogram{Count: 2, Schema: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{2}})}}),
		"rw2_bad_ref":      snappy.Encode(nil, []byte{0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x01, 0x09}),
	}
}
