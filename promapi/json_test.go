package promapi

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"
	"github.com/prometheus/prometheus/util/stats"
	"github.com/stretchr/testify/require"
)

// TestJSONMatchesPrometheus encodes responses with this package's encoders
// and with Prometheus' own codec (a copy of web/api/v1/json_codec.go
// below) and requires the same bytes.
func TestJSONMatchesPrometheus(t *testing.T) {
	registerUpstreamCodec()
	weird := labels.FromStrings("__name__", "m<e>&", "q", `"quoted" \ back`, "u", "ünïcødé \u2028 \x01", "bad", "\xff\xfe")
	fh := &histogram.FloatHistogram{
		Schema: 1, Count: 20, Sum: 33.5, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveBuckets: []float64{1, 0, 5},
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []float64{3},
	}
	nhcb := &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 4, Sum: 1.5, CustomValues: []float64{0.1, 1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []float64{1, 2, 1},
	}
	st := stats.NewQueryStats(&stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)})
	for _, tc := range []struct {
		name     string
		data     any
		warnings []string
		infos    []string
	}{
		{name: "matrix", data: &QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{
			{Metric: weird, Floats: []promql.FPoint{{T: -1500, F: math.NaN()}, {T: 0, F: math.Inf(1)}, {T: 1, F: math.Inf(-1)}, {T: 1_700_000_000_123, F: 1e-7}, {T: 12, F: 1e21}, {T: 99, F: -0.0}, {T: 100, F: 123456.789}}},
			{Metric: labels.FromStrings("a", "b"), Histograms: []promql.HPoint{{T: 1000, H: fh}, {T: 2010, H: nhcb}}},
			{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: 5, F: 1}}, Histograms: []promql.HPoint{{T: 6, H: fh}}},
		}}},
		{name: "empty matrix", data: &QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{}}},
		{name: "vector", data: &QueryData{ResultType: parser.ValueTypeVector, Result: promql.Vector{
			{Metric: weird, T: 1_700_000_000_001, F: 42},
			{Metric: labels.FromStrings("x", "y"), T: 1_700_000_000_010, H: fh},
		}}, warnings: []string{`PromQL warning: <b>&</b> "x"`}, infos: []string{"PromQL info: i"}},
		{name: "empty vector with stats", data: &QueryData{ResultType: parser.ValueTypeVector, Result: promql.Vector{}, Stats: st}},
		{name: "scalar", data: &QueryData{ResultType: parser.ValueTypeScalar, Result: promql.Scalar{T: 1_700_000_000_123, V: 1e21}}},
		{name: "string", data: &QueryData{ResultType: parser.ValueTypeString, Result: promql.String{T: 1_435_781_451_781, V: `<script>"&'`}}},
		{name: "string", data: `sum by (job) (rate(x{a="<b>"}[5m]))`},
		{name: "strings", data: []string{"__name__", "<a&b>", "ü", "\u2028"}},
		{name: "no strings", data: []string{}},
		{name: "label sets", data: []labels.Labels{weird, labels.FromStrings("a", "1")}},
		{name: "metadata", data: map[string][]metadata.Metadata{
			"z_total": {{Type: "counter", Help: "Z <things> & more", Unit: "seconds"}},
			"a":       {{Type: "gauge"}, {Type: "unknown", Help: "h"}},
		}},
		{name: "exemplars", data: []exemplar.QueryResult{
			{SeriesLabels: weird, Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "<1>"), Value: 6, Ts: 1_600_096_945_479, HasTs: true}, {Labels: labels.EmptyLabels(), Value: math.NaN(), Ts: -5}}},
		}},
		{name: "no exemplars", data: []exemplar.QueryResult{}},
		{name: "build info", data: &buildInfoData{Application: "Strata", Version: "<1>", GoVersion: "go1", Features: map[string]string{"b": "false", "a": "true"}}},
		{name: "no data", data: nil, warnings: []string{"w"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			require.NoError(t, EncodeSuccess(tc.data, tc.warnings, tc.infos, func(b []byte) { got = append(got, b...) }))
			want, err := jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(&upstreamResponse{
				Status: "success", Data: upstreamData(tc.data), Warnings: tc.warnings, Infos: tc.infos,
			})
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}

	t.Run("error", func(t *testing.T) {
		var got []byte
		e := BadData(errors.New(`invalid parameter "query": 1:5: parse error: unexpected <by> & "x"`))
		require.NoError(t, EncodeError(e, nil, func(b []byte) { got = append(got, b...) }))
		want, err := jsoniter.ConfigCompatibleWithStandardLibrary.Marshal(&upstreamResponse{Status: "error", ErrorType: string(e.Type), Error: e.Err.Error()})
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}

// upstreamData turns this package's data into the types Prometheus encodes.
func upstreamData(data any) any {
	if qd, ok := data.(*QueryData); ok {
		return &upstreamQueryData{ResultType: qd.ResultType, Result: qd.Result, Stats: qd.Stats}
	}
	return data
}

// The rest of this file is Prometheus' web/api/v1 Response and QueryData
// and its json_codec.go registrations, copied from v0.315.1.
// Copyright The Prometheus Authors; licensed under the Apache License 2.0.

type upstreamResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

type upstreamQueryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
	Stats      stats.QueryStats `json:"stats,omitempty"`
}

var registerOnce = make(chan struct{}, 1)

func registerUpstreamCodec() {
	select {
	case registerOnce <- struct{}{}:
	default:
		return
	}
	jsoniter.RegisterTypeEncoderFunc("promql.Vector", unsafeMarshalVectorJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("promql.Matrix", unsafeMarshalMatrixJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("promql.Series", unsafeMarshalSeriesJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("promql.Sample", unsafeMarshalSampleJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("promql.FPoint", unsafeMarshalFPointJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("promql.HPoint", unsafeMarshalHPointJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("exemplar.Exemplar", marshalExemplarJSON, neverEmpty)
	jsoniter.RegisterTypeEncoderFunc("labels.Labels", unsafeMarshalLabelsJSON, labelsIsEmpty)
}

func unsafeMarshalSeriesJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	marshalSeriesJSON(*(*promql.Series)(ptr), stream)
}

func marshalSeriesJSON(s promql.Series, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	stream.WriteObjectField(`metric`)
	marshalLabelsJSON(s.Metric, stream)
	for i, p := range s.Floats {
		stream.WriteMore()
		if i == 0 {
			stream.WriteObjectField(`values`)
			stream.WriteArrayStart()
		}
		marshalFPointJSON(p, stream)
	}
	if len(s.Floats) > 0 {
		stream.WriteArrayEnd()
	}
	for i, p := range s.Histograms {
		stream.WriteMore()
		if i == 0 {
			stream.WriteObjectField(`histograms`)
			stream.WriteArrayStart()
		}
		marshalHPointJSON(p, stream)
	}
	if len(s.Histograms) > 0 {
		stream.WriteArrayEnd()
	}
	stream.WriteObjectEnd()
}

func neverEmpty(unsafe.Pointer) bool { return false }

func unsafeMarshalSampleJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	marshalSampleJSON(*(*promql.Sample)(ptr), stream)
}

func marshalSampleJSON(s promql.Sample, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	stream.WriteObjectField(`metric`)
	marshalLabelsJSON(s.Metric, stream)
	stream.WriteMore()
	if s.H == nil {
		stream.WriteObjectField(`value`)
	} else {
		stream.WriteObjectField(`histogram`)
	}
	stream.WriteArrayStart()
	jsonutil.MarshalTimestamp(s.T, stream)
	stream.WriteMore()
	if s.H == nil {
		jsonutil.MarshalFloat(s.F, stream)
	} else {
		jsonutil.MarshalHistogram(s.H, stream)
	}
	stream.WriteArrayEnd()
	stream.WriteObjectEnd()
}

func unsafeMarshalFPointJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	marshalFPointJSON(*(*promql.FPoint)(ptr), stream)
}

func marshalFPointJSON(p promql.FPoint, stream *jsoniter.Stream) {
	stream.WriteArrayStart()
	jsonutil.MarshalTimestamp(p.T, stream)
	stream.WriteMore()
	jsonutil.MarshalFloat(p.F, stream)
	stream.WriteArrayEnd()
}

func unsafeMarshalHPointJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	marshalHPointJSON(*(*promql.HPoint)(ptr), stream)
}

func marshalHPointJSON(p promql.HPoint, stream *jsoniter.Stream) {
	stream.WriteArrayStart()
	jsonutil.MarshalTimestamp(p.T, stream)
	stream.WriteMore()
	jsonutil.MarshalHistogram(p.H, stream)
	stream.WriteArrayEnd()
}

func marshalExemplarJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	p := *(*exemplar.Exemplar)(ptr)
	stream.WriteObjectStart()
	stream.WriteObjectField(`labels`)
	marshalLabelsJSON(p.Labels, stream)
	stream.WriteMore()
	stream.WriteObjectField(`value`)
	jsonutil.MarshalFloat(p.Value, stream)
	stream.WriteMore()
	stream.WriteObjectField(`timestamp`)
	jsonutil.MarshalTimestamp(p.Ts, stream)
	stream.WriteObjectEnd()
}

func unsafeMarshalLabelsJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	marshalLabelsJSON(*(*labels.Labels)(ptr), stream)
}

func marshalLabelsJSON(lbls labels.Labels, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	i := 0
	lbls.Range(func(v labels.Label) {
		if i != 0 {
			stream.WriteMore()
		}
		i++
		stream.WriteString(v.Name)
		stream.WriteRaw(`:`)
		stream.WriteString(v.Value)
	})
	stream.WriteObjectEnd()
}

func labelsIsEmpty(ptr unsafe.Pointer) bool { return (*labels.Labels)(ptr).IsEmpty() }

func unsafeMarshalVectorJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	v := *(*promql.Vector)(ptr)
	stream.WriteArrayStart()
	for i, s := range v {
		marshalSampleJSON(s, stream)
		if i != len(v)-1 {
			stream.WriteMore()
		}
	}
	stream.WriteArrayEnd()
}

func unsafeMarshalMatrixJSON(ptr unsafe.Pointer, stream *jsoniter.Stream) {
	m := *(*promql.Matrix)(ptr)
	stream.WriteArrayStart()
	for i, s := range m {
		marshalSeriesJSON(s, stream)
		if i != len(m)-1 {
			stream.WriteMore()
		}
	}
	stream.WriteArrayEnd()
}

// TestBuildInfoFeatures: alertmanager_config_api says whether the process
// serves the Alertmanager configuration API.
func TestBuildInfoFeatures(t *testing.T) {
	for _, on := range []bool{false, true} {
		d := BuildInfo{AlertmanagerConfigAPI: on}.Data().(*buildInfoData)
		if got, want := d.Features["alertmanager_config_api"], strconv.FormatBool(on); got != want {
			t.Errorf("AlertmanagerConfigAPI %v: alertmanager_config_api = %q, want %q", on, got, want)
		}
	}
}
