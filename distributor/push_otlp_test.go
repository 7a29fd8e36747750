package distributor

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/limits"
)

// otlpMetrics builds an OTLP request of one resource (service "svc") with
// a cumulative counter "requests" (two points), a gauge "temp.celsius" and
// whatever extra adds.
func otlpMetrics(extra func(ms pmetric.MetricSlice)) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.Resource().Attributes().PutStr("k8s.pod.name", "pod-1")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	c := ms.AppendEmpty()
	c.SetName("requests")
	c.SetDescription("Requests.")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for i, v := range []int64{3, 5} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetIntValue(v)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow.Add(time.Duration(i-2) * time.Second)))
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(-time.Minute)))
		dp.Attributes().PutStr("method", "GET")
	}
	g := ms.AppendEmpty()
	g.SetName("temp.celsius")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetDoubleValue(21.5)
	gp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	if extra != nil {
		extra(ms)
	}
	return md
}

func deltaSum(ms pmetric.MetricSlice) {
	d := ms.AppendEmpty()
	d.SetName("delta.requests")
	s := d.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	for i := range 3 {
		dp := s.DataPoints().AppendEmpty()
		dp.SetIntValue(2)
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(testNow.Add(time.Duration(i-3) * time.Second)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow.Add(time.Duration(i-2) * time.Second)))
	}
}

func expHistogram(ms pmetric.MetricSlice) {
	h := ms.AppendEmpty()
	h.SetName("latency")
	h.SetUnit("s")
	eh := h.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := eh.DataPoints().AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
	dp.SetScale(1)
	dp.SetCount(6)
	dp.SetSum(7.5)
	dp.SetZeroCount(1)
	dp.Positive().SetOffset(0)
	dp.Positive().BucketCounts().FromRaw([]uint64{2, 3})
}

func otlpProto(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	return b
}

func otlpJSON(t testing.TB, md pmetric.Metrics) []byte {
	t.Helper()
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	require.NoError(t, err)
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func otlpRequest(body []byte, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return r
}

// TestPushOTLP runs OTLP requests through the handler: the answer (status,
// partial success or google.rpc.Status, in the request's encoding) and
// what reached the ingester.
func TestPushOTLP(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxRecvMsgSize = 64 << 10
	h := newHarness(t, harnessOpts{cfg: &cfg})
	good := otlpProto(t, otlpMetrics(nil))
	wantGood := []prompb.TimeSeries{
		{Labels: lbls("__name__", "requests_total", "instance", "", "job", "svc", "method", "GET"), Samples: []prompb.Sample{{Value: 3, Timestamp: testNowMs - 2000}, {Value: 5, Timestamp: testNowMs - 1000}}},
		{Labels: lbls("__name__", "temp_celsius", "job", "svc"), Samples: []prompb.Sample{{Value: 21.5, Timestamp: testNowMs}}},
		{Labels: lbls("__name__", "target_info", "job", "svc", "k8s_pod_name", "pod-1"), Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs - 2000}, {Value: 1, Timestamp: testNowMs}}},
	}
	bomb := make([]byte, 1<<20) // 1 MiB of zeros: far over the 64 KiB limit once decompressed
	for _, tc := range []struct {
		name        string
		req         *http.Request
		wantCode    int
		wantMsg     string // in the Status or the partial success
		wantPartial int64  // rejected data points of a partial success
		wantNames   []string
		stored      bool // something reached the ingester
	}{
		{name: "protobuf", req: otlpRequest(good), wantCode: 200, wantNames: []string{"requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "json", req: otlpRequest(otlpJSON(t, otlpMetrics(nil)), "Content-Type", "application/json"), wantCode: 200, wantNames: []string{"requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "gzip", req: otlpRequest(gzipped(good), "Content-Encoding", "gzip"), wantCode: 200, wantNames: []string{"requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "zstd", req: otlpRequest(zstded(good), "Content-Encoding", "zstd"), wantCode: 200, wantNames: []string{"requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "exponential histogram", req: otlpRequest(otlpProto(t, otlpMetrics(expHistogram))), wantCode: 200, wantNames: []string{"latency_seconds", "requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "delta refused, the rest stored", req: otlpRequest(otlpProto(t, otlpMetrics(deltaSum))), wantCode: 200, wantPartial: 3,
			wantMsg:   `3 data points of delta temporality refused (metrics "delta.requests"): Strata stores cumulative series; configure the exporter for cumulative temporality, or set the tenant's otlp_delta_temporality to "convert" (-distributor.otlp.delta-temporality) [strata-otlp-delta-temporality]`,
			wantNames: []string{"requests_total", "target_info", "temp_celsius"}, stored: true},
		{name: "wrong content type", req: otlpRequest(good, "Content-Type", "text/plain"), wantCode: 415,
			wantMsg: `unsupported Content-Type "text/plain": OTLP/HTTP sends application/x-protobuf or application/json [strata-unsupported-content-type]`},
		{name: "snappy encoding", req: otlpRequest(good, "Content-Encoding", "snappy"), wantCode: 415,
			wantMsg: `unsupported Content-Encoding "snappy": OTLP bodies are sent uncompressed, gzip or zstd [strata-unsupported-content-encoding]`},
		{name: "truncated protobuf", req: otlpRequest(good[:len(good)/2]), wantCode: 400, wantMsg: "decode OTLP protobuf body: "},
		{name: "bad json", req: otlpRequest([]byte(`{"resourceMetrics": [`), "Content-Type", "application/json"), wantCode: 400, wantMsg: "decode OTLP JSON body: "},
		{name: "not gzip", req: otlpRequest(good, "Content-Encoding", "gzip"), wantCode: 400, wantMsg: "decompress gzip body: gzip: invalid header [strata-invalid-compression]"},
		{name: "truncated gzip", req: otlpRequest(gzipped(good)[:30], "Content-Encoding", "gzip"), wantCode: 400, wantMsg: "decompress gzip body: unexpected EOF [strata-invalid-compression]"},
		{name: "gzip bomb", req: otlpRequest(gzipped(bomb), "Content-Encoding", "gzip"), wantCode: 413,
			wantMsg: "decompressed body exceeds the limit of 65536 bytes (-distributor.max-recv-msg-size=65536, decompressed) [strata-request-too-large]"},
		{name: "zstd bomb", req: otlpRequest(zstded(bomb), "Content-Encoding", "zstd"), wantCode: 413, wantMsg: "[strata-request-too-large]"},
		{name: "oversize body", req: otlpRequest(bytes.Repeat([]byte{0x0a}, 100<<10)), wantCode: 413, wantMsg: "compressed body of 102400 bytes exceeds the limit"},
		{name: "GET", req: httptest.NewRequest(http.MethodGet, "/otlp/v1/metrics", nil), wantCode: 405, wantMsg: "method GET not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.ings[0].pushCount()
			rec := httptest.NewRecorder()
			h.d.OTLPHandler().ServeHTTP(rec, tc.req)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			isJSON := tc.req.Header.Get("Content-Type") == "application/json"
			if rec.Code == 200 {
				resp := pmetricotlp.NewExportResponse()
				if isJSON {
					require.NoError(t, resp.UnmarshalJSON(rec.Body.Bytes()))
				} else {
					require.NoError(t, resp.UnmarshalProto(rec.Body.Bytes()))
				}
				require.Equal(t, tc.wantPartial, resp.PartialSuccess().RejectedDataPoints())
				require.Equal(t, tc.wantMsg, resp.PartialSuccess().ErrorMessage())
			} else {
				var st spb.Status
				if isJSON {
					require.NoError(t, protojson.Unmarshal(rec.Body.Bytes(), &st), rec.Body.String())
				} else {
					require.NoError(t, proto.Unmarshal(rec.Body.Bytes(), &st), rec.Body.String())
				}
				require.Contains(t, st.Message, tc.wantMsg)
			}
			if !tc.stored {
				require.Equal(t, before, h.ings[0].pushCount(), "nothing forwarded")
				return
			}
			require.Equal(t, before+1, h.ings[0].pushCount())
			h.ings[0].mu.Lock()
			last := h.ings[0].pushes[before]
			h.ings[0].mu.Unlock()
			var got prompb.WriteRequest
			require.NoError(t, got.Unmarshal(last.WriteRequest))
			names := map[string]bool{}
			for _, s := range got.Timeseries {
				for _, l := range s.Labels {
					if l.Name == "__name__" {
						names[l.Value] = true
					}
				}
			}
			var list []string
			for n := range names {
				list = append(list, n)
			}
			require.ElementsMatch(t, tc.wantNames, list)
			if tc.name == "protobuf" {
				requireSameSeries(t, wantGood, mergeSeries(got.Timeseries))
			}
		})
	}
}

// TestPushOTLPTenantOptions: the otlp_* limits of one tenant change its
// translation only.
func TestPushOTLPTenantOptions(t *testing.T) {
	lim := defaultLimits()
	lim.OTLPDeltaTemporality = limits.DeltaConvert
	lim.OTLPPromoteResourceAttributes = "k8s.pod.name"
	lim.OTLPTranslationStrategy = "UnderscoreEscapingWithoutSuffixes"
	h := newHarness(t, harnessOpts{limits: &lim})
	rec := httptest.NewRecorder()
	h.d.OTLPHandler().ServeHTTP(rec, otlpRequest(otlpProto(t, otlpMetrics(deltaSum))))
	require.Equal(t, 200, rec.Code, rec.Body.String())
	resp := pmetricotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto(rec.Body.Bytes()))
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())
	_, wr := h.ings[0].received(t)
	byName := map[string]prompb.TimeSeries{}
	for _, s := range mergeSeries(wr.Timeseries) {
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				byName[l.Value] = s
			}
		}
	}
	// No _total suffix; the pod promoted onto every series; the delta
	// points 2, 2, 2 summed to 2, 4, 6.
	require.Contains(t, byName, "requests")
	require.Contains(t, labelsString(byName["requests"].Labels), `k8s_pod_name="pod-1"`)
	d := byName["delta_requests"]
	require.Len(t, d.Samples, 3)
	require.Equal(t, []float64{2, 4, 6}, []float64{d.Samples[0].Value, d.Samples[1].Value, d.Samples[2].Value})

	// UTF-8 names kept by the strategy but refused by the legacy name
	// validation: a partial success names the series and the rule.
	lim2 := defaultLimits()
	lim2.OTLPTranslationStrategy = "NoUTF8EscapingWithSuffixes"
	h2 := newHarness(t, harnessOpts{limits: &lim2})
	rec = httptest.NewRecorder()
	h2.d.OTLPHandler().ServeHTTP(rec, otlpRequest(otlpProto(t, otlpMetrics(nil))))
	require.Equal(t, 200, rec.Code, rec.Body.String())
	resp = pmetricotlp.NewExportResponse()
	require.NoError(t, resp.UnmarshalProto(rec.Body.Bytes()))
	require.EqualValues(t, 3, resp.PartialSuccess().RejectedDataPoints(), "the gauge point and target_info's two (its k8s.pod.name label)")
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `invalid metric name "temp.celsius"`)
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "[strata-invalid-metric-name]")
}

// mergeSeries merges the one-sample series entries of one label set, in
// order (the OTLP path sends one entry per sample).
func mergeSeries(in []prompb.TimeSeries) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	at := map[string]int{}
	for _, s := range in {
		k := labelsString(s.Labels)
		i, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, prompb.TimeSeries{Labels: s.Labels})
			i = len(out) - 1
		}
		out[i].Samples = append(out[i].Samples, s.Samples...)
		out[i].Histograms = append(out[i].Histograms, s.Histograms...)
		out[i].Exemplars = append(out[i].Exemplars, s.Exemplars...)
	}
	return out
}

func labelsString(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "=" + `"` + l.Value + `",`)
	}
	return b.String()
}

func lbls(nv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i+1 < len(nv); i += 2 {
		if nv[i+1] != "" {
			out = append(out, prompb.Label{Name: nv[i], Value: nv[i+1]})
		}
	}
	return out
}
