package distributor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// TestPushInflightCountsDecoded: -distributor.max-inflight-push-bytes
// counts what a push holds once decoded (the decoded request; for OTLP
// also its pdata and the series translated from it), not only its body.
// For each protocol, a push whose body and decompressed body fit in what
// other pushes leave of the bound, twice over, but whose decoded form does
// not, gets 429 naming the limit and stores nothing; under a larger bound
// the same push is stored.
func TestPushInflightCountsDecoded(t *testing.T) {
	const others = 1000 // bytes held by another push in flight
	labels := []string{"__name__", "m"}
	for i := range 25 {
		labels = append(labels, fmt.Sprintf("l%02d", i), "v")
	}
	var rw1, rw2 []v2Series
	for i := range 200 {
		s := v2Series{labels: append(labels[:len(labels):len(labels)], "i", fmt.Sprint(i)), samples: []writev2.Sample{{Value: 1, Timestamp: testNowMs}}}
		rw2 = append(rw2, s)
		rw1 = append(rw1, s)
	}
	var wr prompb.WriteRequest
	for _, s := range rw1 {
		wr.Timeseries = append(wr.Timeseries, series(s.labels...))
	}
	md := pmetric.NewMetrics()
	g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("m")
	points := g.SetEmptyGauge().DataPoints()
	for i := range 200 {
		dp := points.AppendEmpty()
		dp.SetDoubleValue(1)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(testNow))
		for j := range 10 {
			dp.Attributes().PutStr(fmt.Sprintf("l%d", j), "v")
		}
		dp.Attributes().PutInt("i", int64(i))
	}

	for _, tc := range []struct {
		name     string
		body     []byte
		req      func(body []byte) *http.Request
		wantCode int
	}{
		{name: "remote-write 1.0", body: encode(t, &wr), req: newPushRequest, wantCode: http.StatusNoContent},
		{name: "remote-write 2.0", body: encodeV2(t, rw2...), req: newPushRequestV2, wantCode: http.StatusNoContent},
		{name: "OTLP", body: otlpProto(t, md), req: func(b []byte) *http.Request { return otlpRequest(b) }, wantCode: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := len(tc.body) // an OTLP body is not compressed here
			if tc.wantCode == http.StatusNoContent {
				raw, err := snappy.Decode(nil, tc.body)
				require.NoError(t, err)
				held += len(raw)
			}
			push := func(limit int64) (*harness, int, string) {
				cfg := defaultConfig()
				cfg.MaxInflightPushBytes = limit
				h := newHarness(t, harnessOpts{cfg: &cfg})
				require.NoError(t, h.d.reserveInflight(&pushBody{}, others))
				if tc.wantCode == http.StatusNoContent {
					code, msg := h.do(t, tc.req(tc.body))
					return h, code, msg
				}
				rec := httptest.NewRecorder()
				h.d.OTLPHandler().ServeHTTP(rec, tc.req(tc.body))
				msg := rec.Body.String()
				if rec.Code != http.StatusOK {
					var st spb.Status
					require.NoError(t, proto.Unmarshal(rec.Body.Bytes(), &st), msg)
					msg = st.Message
				}
				return h, rec.Code, msg
			}

			h, code, msg := push(int64(others + 2*held))
			require.Equal(t, http.StatusTooManyRequests, code, msg)
			require.Contains(t, msg, fmt.Sprintf("this distributor holds %d bytes of other pushes in flight; this one's ", others))
			require.Contains(t, msg, fmt.Sprintf("would pass the limit of %d (-distributor.max-inflight-push-bytes): retry later [strata-max-inflight-push-bytes]", others+2*held))
			require.Zero(t, h.ings[0].pushCount(), "nothing stored")
			require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues("anonymous", limitedInflightBytes)))
			require.Equal(t, float64(others), testutil.ToFloat64(h.d.m.inflightPushBytes), "the refused push gave back what it reserved")

			h, code, msg = push(others + 64<<20)
			require.Equal(t, tc.wantCode, code, msg)
			require.Equal(t, 1, h.ings[0].pushCount())
			require.Equal(t, float64(others), testutil.ToFloat64(h.d.m.inflightPushBytes))
		})
	}
}

// TestPdataBytesBoundsUnmarshal: pdataBytes is at least what unmarshalling
// an OTLP body allocated (growth garbage included), for bodies of each
// kind of element sent empty, the densest input, and for a typical body,
// in protobuf and in JSON.
func TestPdataBytesBoundsUnmarshal(t *testing.T) {
	const n = 20000
	many := func(add func(md pmetric.Metrics)) pmetric.Metrics {
		md := pmetric.NewMetrics()
		add(md)
		return md
	}
	metrics := func(md pmetric.Metrics) pmetric.MetricSlice {
		return md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	}
	for _, tc := range []struct {
		name string
		md   pmetric.Metrics
	}{
		{"typical", otlpMetrics(func(ms pmetric.MetricSlice) {
			for range 200 {
				deltaSum(ms)
				expHistogram(ms)
			}
		})},
		{"empty resources", many(func(md pmetric.Metrics) {
			for range n {
				md.ResourceMetrics().AppendEmpty()
			}
		})},
		{"empty scopes", many(func(md pmetric.Metrics) {
			sms := md.ResourceMetrics().AppendEmpty().ScopeMetrics()
			for range n {
				sms.AppendEmpty()
			}
		})},
		{"empty metrics", many(func(md pmetric.Metrics) {
			ms := metrics(md)
			for range n {
				ms.AppendEmpty()
			}
		})},
		{"empty points", many(func(md pmetric.Metrics) {
			dps := metrics(md).AppendEmpty().SetEmptyGauge().DataPoints()
			for range n {
				dps.AppendEmpty()
			}
		})},
		{"empty histogram points", many(func(md pmetric.Metrics) {
			dps := metrics(md).AppendEmpty().SetEmptyHistogram().DataPoints()
			for range n {
				dps.AppendEmpty()
			}
		})},
		{"empty exemplars", many(func(md pmetric.Metrics) {
			es := metrics(md).AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty().Exemplars()
			for range n {
				es.AppendEmpty()
			}
		})},
		{"empty quantiles", many(func(md pmetric.Metrics) {
			qs := metrics(md).AppendEmpty().SetEmptySummary().DataPoints().AppendEmpty().QuantileValues()
			for range n {
				qs.AppendEmpty()
			}
		})},
		{"empty attributes", many(func(md pmetric.Metrics) {
			attrs := md.ResourceMetrics().AppendEmpty().Resource().Attributes()
			for i := range n {
				attrs.PutEmpty(fmt.Sprint(i))
			}
		})},
		{"empty nested values", many(func(md pmetric.Metrics) {
			s := md.ResourceMetrics().AppendEmpty().Resource().Attributes().PutEmptySlice("a")
			for range n {
				s.AppendEmpty()
			}
		})},
	} {
		for _, json := range []bool{false, true} {
			body := otlpProto(t, tc.md)
			if json {
				body = otlpJSON(t, tc.md)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			req := pmetricotlp.NewExportRequest()
			if json {
				require.NoError(t, req.UnmarshalJSON(body))
			} else {
				require.NoError(t, req.UnmarshalProto(body))
			}
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			got := pdataBytes(req.Metrics(), len(body))
			require.GreaterOrEqual(t, uint64(got), allocated, "%s (JSON %v): %d-byte body", tc.name, json, len(body))
			t.Logf("%s (JSON %v): %d-byte body allocated %d, counted %d", tc.name, json, len(body), allocated, got)
		}
	}
}
