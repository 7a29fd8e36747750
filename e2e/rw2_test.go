package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestRemoteWrite2 sends remote-write 2.0 with Prometheus' own sender
// (storage/remote's write client, configured for
// io.prometheus.write.v2.Request: its headers, its retry rules and its
// reading of the written-counts headers) to a real strata process, and
// reads every sample, histogram (integer, float, custom buckets),
// exemplar and metadata entry back through the query API.
func TestRemoteWrite2(t *testing.T) {
	t.Parallel()
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: strataBin(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := newClient(s.URL)

	u, err := url.Parse(s.URL + "/api/v1/push")
	require.NoError(t, err)
	wc, err := remote.NewWriteClient("strata", &remote.ClientConfig{
		URL:           &config_util.URL{URL: u},
		Timeout:       model.Duration(30 * time.Second),
		WriteProtoMsg: remoteapi.WriteV2MessageType,
	})
	require.NoError(t, err)

	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second).UnixMilli()
	ints := []*histogram.Histogram{
		{Count: 6, Sum: 12.5, Schema: 2, ZeroThreshold: 0.001, ZeroCount: 1,
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 3}}, PositiveBuckets: []int64{1, 1, -1},
			NegativeSpans: []histogram.Span{{Offset: 2, Length: 1}}, NegativeBuckets: []int64{1}},
		{Count: 10, Sum: 20, Schema: 2, ZeroThreshold: 0.001, ZeroCount: 2, CounterResetHint: histogram.NotCounterReset,
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 3}}, PositiveBuckets: []int64{2, 1, -1},
			NegativeSpans: []histogram.Span{{Offset: 2, Length: 1}}, NegativeBuckets: []int64{1}},
	}
	floats := []*histogram.FloatHistogram{
		{Count: 4.5, Sum: -1.25, Schema: 0, CounterResetHint: histogram.GaugeType,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1.5, 3}},
	}
	nhcb := []*histogram.FloatHistogram{
		{Count: 7, Sum: 3.5, Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 0.5, 1},
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}}, PositiveBuckets: []float64{1, 2, 3, 1}},
	}

	st := writev2.NewSymbolTable()
	refs := func(ls labels.Labels) []uint32 { return st.SymbolizeLabels(ls, nil) }
	counter := labels.FromStrings("__name__", "e2e_rw2_requests_total", "job", "api", "path", "/ünï")
	gauge := labels.FromStrings("__name__", "e2e_rw2_temperature_celsius", "job", "api")
	hInt := labels.FromStrings("__name__", "e2e_rw2_latency_seconds", "job", "api")
	hFloat := labels.FromStrings("__name__", "e2e_rw2_gauge_histogram", "job", "api")
	hCustom := labels.FromStrings("__name__", "e2e_rw2_nhcb_seconds", "job", "api")
	var req writev2.Request
	var wantSamples int
	counterTS := writev2.TimeSeries{LabelsRefs: refs(counter), Metadata: writev2.Metadata{
		Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: st.Symbolize("Requests served."), UnitRef: st.Symbolize("requests")}}
	for i := range 10 {
		counterTS.Samples = append(counterTS.Samples, writev2.Sample{Value: float64(i * i), Timestamp: t0 + int64(i)*1000, StartTimestamp: t0 - 60000})
	}
	counterTS.Exemplars = []writev2.Exemplar{
		{LabelsRefs: refs(labels.FromStrings("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")), Value: 81, Timestamp: t0 + 9000},
	}
	gaugeTS := writev2.TimeSeries{LabelsRefs: refs(gauge), Metadata: writev2.Metadata{
		Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Temperature."), UnitRef: st.Symbolize("celsius")},
		Samples: []writev2.Sample{{Value: -3.5, Timestamp: t0}, {Value: math.Inf(1), Timestamp: t0 + 1000}, {Value: 21, Timestamp: t0 + 2000}}}
	wantSamples = len(counterTS.Samples) + len(gaugeTS.Samples)
	hIntTS := writev2.TimeSeries{LabelsRefs: refs(hInt), Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_HISTOGRAM, HelpRef: st.Symbolize("Latency.")}}
	for i, h := range ints {
		hIntTS.Histograms = append(hIntTS.Histograms, writev2.FromIntHistogram(0, t0+int64(i)*1000, h))
	}
	hFloatTS := writev2.TimeSeries{LabelsRefs: refs(hFloat)}
	for i, h := range floats {
		hFloatTS.Histograms = append(hFloatTS.Histograms, writev2.FromFloatHistogram(0, t0+int64(i)*1000, h))
	}
	hCustomTS := writev2.TimeSeries{LabelsRefs: refs(hCustom)}
	for i, h := range nhcb {
		hCustomTS.Histograms = append(hCustomTS.Histograms, writev2.FromFloatHistogram(0, t0+int64(i)*1000, h))
	}
	req.Timeseries = []writev2.TimeSeries{counterTS, gaugeTS, hIntTS, hFloatTS, hCustomTS}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)

	stats, err := wc.Store(ctx, snappy.Encode(nil, raw), 0)
	require.NoError(t, err)
	require.True(t, stats.Confirmed, "the sender read the written-counts headers")
	require.Equal(t, wantSamples, stats.Samples)
	require.Equal(t, len(ints)+len(floats)+len(nhcb), stats.Histograms)
	require.Equal(t, 1, stats.Exemplars)

	// Samples, exactly.
	at := time.UnixMilli(t0 + 10000)
	for _, ts := range []writev2.TimeSeries{counterTS, gaugeTS} {
		ls, err := ts.ToLabels(new(labels.ScratchBuilder), req.Symbols)
		require.NoError(t, err)
		r, err := api.query(ctx, ls.Get("__name__")+"[1m]", at)
		require.NoError(t, err)
		require.Len(t, r.Series, 1)
		require.Equal(t, ls.String(), r.Series[0].Labels.String())
		require.Len(t, r.Series[0].Points, len(ts.Samples))
		for i, p := range r.Series[0].Points {
			require.Equal(t, ts.Samples[i].Timestamp, p.T)
			require.Equal(t, ts.Samples[i].Value, p.V)
		}
	}
	// Histograms, bucket for bucket.
	for _, c := range []struct {
		name string
		want []*histogram.FloatHistogram
	}{
		{hInt.Get("__name__"), []*histogram.FloatHistogram{ints[0].ToFloat(nil), ints[1].ToFloat(nil)}},
		{hFloat.Get("__name__"), floats},
		{hCustom.Get("__name__"), nhcb},
	} {
		got := queryHistograms(ctx, t, api, c.name+"[1m]", at)
		require.Len(t, got, len(c.want), c.name)
		for i, h := range c.want {
			require.Equal(t, jsonHistogramOf(h), got[i], "%s histogram %d", c.name, i)
		}
	}
	// Exemplars.
	a, err := api.do(ctx, http.MethodGet, "/api/v1/query_exemplars", url.Values{
		"query": {counter.Get("__name__")}, "start": {formatTime(time.UnixMilli(t0))}, "end": {formatTime(at)}}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, a.Status, a.text())
	var ex struct {
		Data []struct {
			SeriesLabels map[string]string `json:"seriesLabels"`
			Exemplars    []struct {
				Labels    map[string]string `json:"labels"`
				Value     string            `json:"value"`
				Timestamp float64           `json:"timestamp"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(a.Body, &ex), a.text())
	require.Len(t, ex.Data, 1, a.text())
	require.Equal(t, counter.Map(), ex.Data[0].SeriesLabels)
	require.Len(t, ex.Data[0].Exemplars, 1)
	require.Equal(t, map[string]string{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, ex.Data[0].Exemplars[0].Labels)
	require.Equal(t, "81", ex.Data[0].Exemplars[0].Value)
	require.Equal(t, t0+9000, int64(math.Round(ex.Data[0].Exemplars[0].Timestamp*1000)))
	// Metadata, one entry per family.
	for _, m := range []struct{ name, typ, help, unit string }{
		{counter.Get("__name__"), "counter", "Requests served.", "requests"},
		{gauge.Get("__name__"), "gauge", "Temperature.", "celsius"},
		{hInt.Get("__name__"), "histogram", "Latency.", ""},
	} {
		a, err := api.do(ctx, http.MethodGet, "/api/v1/metadata", url.Values{"metric": {m.name}}, nil, nil)
		require.NoError(t, err)
		var md struct {
			Data map[string][]struct{ Type, Help, Unit string } `json:"data"`
		}
		require.NoError(t, json.Unmarshal(a.Body, &md), a.text())
		require.Equal(t, []struct{ Type, Help, Unit string }{{m.typ, m.help, m.unit}}, md.Data[m.name], a.text())
	}

	// A refused 2.0 request stores nothing and the sender is told not to
	// retry: a reference outside the symbols table.
	bad := writev2.Request{Symbols: []string{"", "__name__", "e2e_rw2_refused"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: t0}}},
		{LabelsRefs: []uint32{1, 2, 9, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: t0}}},
	}}
	raw, err = bad.Marshal()
	require.NoError(t, err)
	_, err = wc.Store(ctx, snappy.Encode(nil, raw), 0)
	require.ErrorContains(t, err, "strata-invalid-symbol-reference")
	r, err := api.query(ctx, "e2e_rw2_refused", at)
	require.NoError(t, err)
	require.Empty(t, r.Series)
}

// jsonHistogram is a native histogram as the query API writes it: count,
// sum, and the non-empty buckets as lower, upper, count.
type jsonHistogram struct {
	Count, Sum float64
	Buckets    [][3]float64
}

func jsonHistogramOf(h *histogram.FloatHistogram) jsonHistogram {
	out := jsonHistogram{Count: h.Count, Sum: h.Sum}
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		out.Buckets = append(out.Buckets, [3]float64{b.Lower, b.Upper, b.Count})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i][0] < out.Buckets[j][0] })
	return out
}

// queryHistograms runs a range-vector query of one series and returns its
// histograms in time order.
func queryHistograms(ctx context.Context, t *testing.T, api *client, q string, at time.Time) []jsonHistogram {
	t.Helper()
	b, err := api.ok(ctx, http.MethodPost, "/api/v1/query", queryParams(q, at), nil)
	require.NoError(t, err)
	var ans struct {
		Data struct {
			Result []struct {
				Histograms [][2]json.RawMessage `json:"histograms"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &ans), string(b))
	require.Len(t, ans.Data.Result, 1, string(b))
	var out []jsonHistogram
	num := func(s string) float64 {
		f, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err)
		return f
	}
	for _, p := range ans.Data.Result[0].Histograms {
		var h struct {
			Count, Sum string
			Buckets    [][4]any
		}
		require.NoError(t, json.Unmarshal(p[1], &h))
		jh := jsonHistogram{Count: num(h.Count), Sum: num(h.Sum)}
		for _, bk := range h.Buckets {
			jh.Buckets = append(jh.Buckets, [3]float64{num(fmt.Sprint(bk[1])), num(fmt.Sprint(bk[2])), num(fmt.Sprint(bk[3]))})
		}
		sort.Slice(jh.Buckets, func(i, j int) bool { return jh.Buckets[i][0] < jh.Buckets[j][0] })
		out = append(out, jh)
	}
	return out
}

// writeV2 is a snappy-compressed remote-write 2.0 body of one series per
// labels (alternating names and values), one sample each at ts, or
// histogram h when it is not nil.
func writeV2(ts int64, h *histogram.Histogram, series ...[]string) []byte {
	st := writev2.NewSymbolTable()
	var req writev2.Request
	for _, nv := range series {
		var refs []uint32
		for _, x := range nv {
			refs = append(refs, st.Symbolize(x))
		}
		one := writev2.TimeSeries{LabelsRefs: refs}
		if h != nil {
			one.Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, ts, h)}
		} else {
			one.Samples = []writev2.Sample{{Value: 1, Timestamp: ts}}
		}
		req.Timeseries = append(req.Timeseries, one)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

// rw2Headers are the headers of a remote-write 2.0 push.
var rw2Headers = map[string]string{
	"Content-Type":                      "application/x-protobuf;proto=io.prometheus.write.v2.Request",
	"X-Prometheus-Remote-Write-Version": "2.0.0",
}
