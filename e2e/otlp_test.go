package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestOTLP pushes counters, an up-down counter, a gauge, an
// explicit-bucket histogram and an exponential histogram with the
// OpenTelemetry Go SDK's own OTLP/HTTP exporter. Every push goes through a
// tee to a real strata process and to Prometheus' own OTLP receiver
// (storage/remote's OTLP write handler over a TSDB, in this test): what
// strata's query API answers must be what that TSDB stored, sample for
// sample and bucket for bucket, target_info included. A push of delta
// temporality is then refused by strata (its default
// otlp_delta_temporality), with OTLP's partial success, and stores nothing.
func TestOTLP(t *testing.T) {
	t.Parallel()
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: strataBin(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := newClient(s.URL)

	// Prometheus' receiver, as `prometheus --web.enable-otlp-receiver`
	// runs it with its default otlp: configuration.
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage, opts.MaxExemplars = true, 1000
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	require.NoError(t, err)
	defer db.Close()
	ref := remote.NewOTLPWriteHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), db,
		func() config.Config { return config.Config{OTLPConfig: config.DefaultOTLPConfig} },
		remote.OTLPOptions{LookbackDelta: 5 * time.Minute})

	// The tee: the exporter's request, byte for byte, to both; strata's
	// answer back to the exporter.
	var (
		mu                    sync.Mutex // the tee's handler goroutines write, the test reads
		refCodes, strataCodes []int
		lastAnswer            []byte
	)
	codes := func() (ref, strata []int, last string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(refCodes), slices.Clone(strataCodes), string(lastAnswer)
	}
	tee := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		rr := httptest.NewRequest(http.MethodPost, "/api/v1/otlp/v1/metrics", bytes.NewReader(body))
		rr.Header = r.Header.Clone()
		rec := httptest.NewRecorder()
		ref.ServeHTTP(rec, rr)
		refCodes = append(refCodes, rec.Code)

		sr, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.URL+"/otlp/v1/metrics", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sr.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(sr)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		lastAnswer, _ = io.ReadAll(resp.Body)
		strataCodes = append(strataCodes, resp.StatusCode)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(lastAnswer)
	}))
	defer tee.Close()

	res, err := resource.New(ctx, resource.WithAttributes(
		attribute.String("service.name", "otlp-sdk"), attribute.String("service.namespace", "e2e"),
		attribute.String("service.instance.id", "i-1"), attribute.String("deployment.environment", "test")))
	require.NoError(t, err)
	exp, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(tee.URL+"/otlp/v1/metrics"))
	require.NoError(t, err)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "e2e.otlp.exp_latency"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	defer mp.Shutdown(context.Background())
	meter := mp.Meter("e2e")
	counter, err := meter.Int64Counter("e2e.otlp.requests", otelmetric.WithDescription("Requests served."), otelmetric.WithUnit("{request}"))
	require.NoError(t, err)
	updown, err := meter.Int64UpDownCounter("e2e.otlp.queue", otelmetric.WithDescription("Queued items."))
	require.NoError(t, err)
	gauge, err := meter.Float64Gauge("e2e.otlp.temperature", otelmetric.WithUnit("Cel"))
	require.NoError(t, err)
	hist, err := meter.Float64Histogram("e2e.otlp.latency", otelmetric.WithUnit("s"), otelmetric.WithExplicitBucketBoundaries(0.1, 0.5, 1, 5))
	require.NoError(t, err)
	expHist, err := meter.Float64Histogram("e2e.otlp.exp_latency", otelmetric.WithUnit("s"))
	require.NoError(t, err)

	// A sampled trace context, so the SDK keeps exemplars.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	tctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))

	get := attribute.String("method", "GET")
	for round := range 3 {
		counter.Add(tctx, int64(3+round), otelmetric.WithAttributes(get))
		counter.Add(ctx, 1, otelmetric.WithAttributes(attribute.String("method", "POST")))
		updown.Add(ctx, int64(5-4*round))
		gauge.Record(ctx, 20.5+float64(round), otelmetric.WithAttributes(attribute.String("room", "a")))
		for _, v := range []float64{0.05, 0.3, 0.7, 2, 9, float64(round)} {
			hist.Record(tctx, v, otelmetric.WithAttributes(get))
			expHist.Record(tctx, v*1.5, otelmetric.WithAttributes(get))
		}
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(ctx, &rm))
		require.NoError(t, exp.Export(ctx, &rm), "round %d", round)
	}
	refGot, strataGot, _ := codes()
	require.Equal(t, []int{200, 200, 200}, refGot)
	require.Equal(t, []int{200, 200, 200}, strataGot)
	end := time.Now().Add(time.Minute)

	// What the reference stored.
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	want := map[string]seriesData{}
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		se := ss.At()
		var d seriesData
		it := se.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				d.floats = append(d.floats, [2]float64{float64(ts), v})
			default:
				ts, fh := it.AtFloatHistogram(nil)
				d.hists = append(d.hists, timedHistogram{ts, jsonHistogramOf(fh)})
			}
		}
		want[se.Labels().String()] = d
	}
	require.NoError(t, ss.Err())
	require.NotEmpty(t, want)
	for _, name := range []string{"e2e_otlp_requests_total", "e2e_otlp_queue", "e2e_otlp_temperature_celsius", "e2e_otlp_latency_seconds_bucket", "e2e_otlp_exp_latency_seconds", "target_info"} {
		found := false
		for k := range want {
			found = found || containsName(k, name)
		}
		require.True(t, found, "the reference stored no %s: %v", name, keys(want))
	}

	// What strata answers: the same.
	got := querySeriesData(ctx, t, api, `{__name__=~".+", job="e2e/otlp-sdk"}[1h]`, end)
	require.Equal(t, keys(want), keys(got))
	floats, hists := 0, 0
	for k, w := range want {
		require.Equal(t, w, got[k], "series %s", k)
		floats, hists = floats+len(w.floats), hists+len(w.hists)
	}
	t.Logf("strata and Prometheus' receiver agree on %d series, %d float samples, %d histograms", len(want), floats, hists)

	// Exemplars from the trace context, as the reference kept them.
	eq, err := db.ExemplarQuerier(ctx)
	require.NoError(t, err)
	refEx, err := eq.Select(0, math.MaxInt64, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "e2e_otlp_requests_total")})
	require.NoError(t, err)
	require.NotEmpty(t, refEx)
	a, err := api.do(ctx, http.MethodGet, "/api/v1/query_exemplars", url.Values{
		"query": {"e2e_otlp_requests_total"}, "start": {"0"}, "end": {formatTime(end)}}, nil, nil)
	require.NoError(t, err)
	var ex struct {
		Data []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels map[string]string `json:"labels"`
				Value  string            `json:"value"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(a.Body, &ex), a.text())
	require.Len(t, ex.Data, len(refEx), a.text())
	for _, r := range refEx {
		var match bool
		for _, d := range ex.Data {
			if labels.FromMap(d.SeriesLabels).String() != r.SeriesLabels.String() {
				continue
			}
			match = true
			require.Len(t, d.Exemplars, len(r.Exemplars))
			for i, e := range r.Exemplars {
				require.Equal(t, e.Labels.Map(), d.Exemplars[i].Labels)
				require.Equal(t, strconv.FormatFloat(e.Value, 'f', -1, 64), d.Exemplars[i].Value)
			}
		}
		require.True(t, match, "no exemplars of %s", r.SeriesLabels)
	}

	// Metadata of the counter, as the translation names it.
	a, err = api.do(ctx, http.MethodGet, "/api/v1/metadata", url.Values{"metric": {"e2e_otlp_requests_total"}}, nil, nil)
	require.NoError(t, err)
	var md struct {
		Data map[string][]struct{ Type, Help, Unit string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(a.Body, &md), a.text())
	require.Equal(t, []struct{ Type, Help, Unit string }{{"counter", "Requests served.", ""}}, md.Data["e2e_otlp_requests_total"], a.text())

	// Delta temporality: refused by default, the exporter told so by a
	// partial success; nothing of it stored.
	deltaReader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(func(sdkmetric.InstrumentKind) metricdata.Temporality { return metricdata.DeltaTemporality }))
	dmp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(deltaReader))
	defer dmp.Shutdown(context.Background())
	dc, err := dmp.Meter("e2e").Int64Counter("e2e.otlp.delta_requests")
	require.NoError(t, err)
	dg, err := dmp.Meter("e2e").Float64Gauge("e2e.otlp.delta_side_gauge")
	require.NoError(t, err)
	dc.Add(ctx, 7)
	dg.Record(ctx, 1)
	var rm metricdata.ResourceMetrics
	require.NoError(t, deltaReader.Collect(ctx, &rm))
	_ = exp.Export(ctx, &rm) // the SDK reports a partial success through otel.Handle, not as an error
	_, strataGot, last := codes()
	require.Equal(t, 200, strataGot[len(strataGot)-1], last)
	require.Contains(t, last, "strata-otlp-delta-temporality")
	r, err := api.query(ctx, `e2e_otlp_delta_requests_total`, end)
	require.NoError(t, err)
	require.Empty(t, r.Series, "a refused delta metric was stored")
	r, err = api.query(ctx, `e2e_otlp_delta_side_gauge`, end)
	require.NoError(t, err)
	require.Len(t, r.Series, 1, "the rest of a partly refused push is stored")
}

type timedHistogram struct {
	T int64
	H jsonHistogram
}

// seriesData is one series' samples: floats as [ms, value], histograms.
type seriesData struct {
	floats [][2]float64
	hists  []timedHistogram
}

func keys(m map[string]seriesData) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func containsName(series, name string) bool {
	return bytes.Contains([]byte(series), []byte(`__name__="`+name+`"`))
}

// querySeriesData runs a range-vector query and returns every series'
// floats and histograms, keyed by labels.Labels.String().
func querySeriesData(ctx context.Context, t *testing.T, api *client, q string, at time.Time) map[string]seriesData {
	t.Helper()
	b, err := api.ok(ctx, http.MethodPost, "/api/v1/query", queryParams(q, at), nil)
	require.NoError(t, err)
	var ans struct {
		Data struct {
			Result []struct {
				Metric     map[string]string    `json:"metric"`
				Values     [][2]json.RawMessage `json:"values"`
				Histograms [][2]json.RawMessage `json:"histograms"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &ans), string(b))
	out := map[string]seriesData{}
	for _, r := range ans.Data.Result {
		var d seriesData
		for _, p := range r.Values {
			var ts float64
			var v string
			require.NoError(t, json.Unmarshal(p[0], &ts))
			require.NoError(t, json.Unmarshal(p[1], &v))
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			d.floats = append(d.floats, [2]float64{math.Round(ts * 1000), f})
		}
		for _, p := range r.Histograms {
			var ts float64
			require.NoError(t, json.Unmarshal(p[0], &ts))
			var h struct {
				Count, Sum string
				Buckets    [][4]any
			}
			require.NoError(t, json.Unmarshal(p[1], &h))
			num := func(s string) float64 {
				f, err := strconv.ParseFloat(s, 64)
				require.NoError(t, err)
				return f
			}
			jh := jsonHistogram{Count: num(h.Count), Sum: num(h.Sum)}
			for _, bk := range h.Buckets {
				jh.Buckets = append(jh.Buckets, [3]float64{num(bk[1].(string)), num(bk[2].(string)), num(bk[3].(string))})
			}
			sort.Slice(jh.Buckets, func(i, j int) bool { return jh.Buckets[i][0] < jh.Buckets[j][0] })
			d.hists = append(d.hists, timedHistogram{int64(math.Round(ts * 1000)), jh})
		}
		out[labels.FromMap(r.Metric).String()] = d
	}
	return out
}

// otlpHeaders are the headers of an uncompressed OTLP/HTTP protobuf push.
var otlpHeaders = map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "", "X-Prometheus-Remote-Write-Version": ""}

// otlpGauge is an OTLP protobuf request of one data point of value 1 at
// ts (ms): a gauge, or a delta sum when delta.
func otlpGauge(name string, ts int64, delta bool) []byte {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "e2e-badinput")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	var dp pmetric.NumberDataPoint
	if delta {
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp = s.DataPoints().AppendEmpty()
	} else {
		dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
	}
	dp.SetDoubleValue(1)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.UnixMilli(ts)))
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		panic(err)
	}
	return b
}

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func zstdOf(b []byte) []byte {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}
