package distributor

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/golang/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkPushHandlerProtocols: the whole HTTP handler with a no-op
// ingester, for the standard request sent as remote-write 1.0, as 2.0 and
// as OTLP (gauges of the same names and attributes; the translation adds
// target_info and job), side by side: compare cpu-ns/series.
//
//	go test ./distributor -run '^$' -bench PushHandlerProtocols -count 8
func BenchmarkPushHandlerProtocols(b *testing.B) {
	series := nodeSeries(benchSeries)
	// 2.0: the same series through a symbols table.
	st := writev2.NewSymbolTable()
	var v2 writev2.Request
	for _, s := range series {
		var refs []uint32
		for _, l := range s.Labels {
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		v2.Timeseries = append(v2.Timeseries, writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: s.Samples[0].Value, Timestamp: s.Samples[0].Timestamp}}})
	}
	v2.Symbols = st.Symbols()
	raw2, err := v2.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	// OTLP: one gauge data point per series, under one resource.
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "node")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	byName := map[string]pmetric.NumberDataPointSlice{}
	for _, s := range series {
		var name string
		for _, l := range s.Labels {
			if l.Name == "__name__" {
				name = l.Value
			}
		}
		dps, ok := byName[name]
		if !ok {
			m := ms.AppendEmpty()
			m.SetName(name)
			dps = m.SetEmptyGauge().DataPoints()
			byName[name] = dps
		}
		dp := dps.AppendEmpty()
		dp.SetDoubleValue(s.Samples[0].Value)
		dp.SetTimestamp(pcommon.Timestamp(s.Samples[0].Timestamp * 1e6))
		for _, l := range s.Labels {
			if l.Name != "__name__" {
				dp.Attributes().PutStr(l.Name, l.Value)
			}
		}
	}
	otlp := otlpProtoOf(b, md)

	for _, tc := range []struct {
		name string
		body []byte
		req  func([]byte) *http.Request
		want int
	}{
		{"rw1", standardBody(b), newPushRequest, http.StatusNoContent},
		{"rw2", snappy.Encode(nil, raw2), newPushRequestV2, http.StatusNoContent},
		{"otlp", otlp, func(body []byte) *http.Request { return otlpRequest(body) }, http.StatusOK},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b, harnessOpts{clients: noopClients{}})
			handler := h.d.PushHandler()
			if tc.name == "otlp" {
				handler = h.d.OTLPHandler()
			}
			rd := bytes.NewReader(tc.body)
			req := tc.req(tc.body)
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				rd.Reset(tc.body)
				req.Body = io.NopCloser(rd)
				clear(w.h)
				handler.ServeHTTP(w, req)
				if w.code != tc.want {
					b.Fatalf("status %d", w.code)
				}
			}
			reportPerSeries(b, cpu)
		})
	}
}

func otlpProtoOf(b *testing.B, md pmetric.Metrics) []byte {
	return otlpProto(b, md)
}
