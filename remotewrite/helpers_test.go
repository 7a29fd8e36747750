package remotewrite

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/prompb"
)

// staleNaN is Prometheus' staleness marker (model/value.StaleNaN).
var staleNaN = math.Float64frombits(0x7ff0000000000002)

// fromPrompb converts a decoded prompb.WriteRequest into a Request, to
// compare with what Decode made of the same bytes.
func fromPrompb(wr *prompb.WriteRequest) *Request {
	r := &Request{}
	for _, ts := range wr.Timeseries {
		var s Series
		for _, l := range ts.Labels {
			s.Labels = append(s.Labels, Label{l.Name, l.Value})
		}
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, Sample{x.Value, x.Timestamp})
		}
		for _, e := range ts.Exemplars {
			var ls []Label
			for _, l := range e.Labels {
				ls = append(ls, Label{l.Name, l.Value})
			}
			s.Exemplars = append(s.Exemplars, Exemplar{ls, e.Value, e.Timestamp})
		}
		for _, h := range ts.Histograms {
			s.Histograms = append(s.Histograms, histogramFromPrompb(h))
		}
		r.Series = append(r.Series, s)
	}
	for _, m := range wr.Metadata {
		r.Metadata = append(r.Metadata, Metadata{MetricType(m.Type), m.MetricFamilyName, m.Help, m.Unit})
	}
	return r
}

func histogramFromPrompb(h prompb.Histogram) Histogram {
	x := Histogram{
		IsFloat:        h.IsFloatHistogram(),
		CountInt:       h.GetCountInt(),
		CountFloat:     h.GetCountFloat(),
		Sum:            h.Sum,
		Schema:         h.Schema,
		ZeroThreshold:  h.ZeroThreshold,
		ZeroCountInt:   h.GetZeroCountInt(),
		ZeroCountFloat: h.GetZeroCountFloat(),
		NegativeDeltas: h.NegativeDeltas,
		NegativeCounts: h.NegativeCounts,
		PositiveDeltas: h.PositiveDeltas,
		PositiveCounts: h.PositiveCounts,
		ResetHint:      int32(h.ResetHint),
		Timestamp:      h.Timestamp,
		CustomValues:   h.CustomValues,
	}
	for _, s := range h.NegativeSpans {
		x.NegativeSpans = append(x.NegativeSpans, BucketSpan{s.Offset, s.Length})
	}
	for _, s := range h.PositiveSpans {
		x.PositiveSpans = append(x.PositiveSpans, BucketSpan{s.Offset, s.Length})
	}
	return x
}

// diffRequest describes the first difference between got and want, or
// returns "". Floats compare bit for bit; nil and empty slices are equal.
func diffRequest(got, want *Request) string {
	if len(got.Series) != len(want.Series) {
		return fmt.Sprintf("%d series, want %d", len(got.Series), len(want.Series))
	}
	for i := range got.Series {
		if d := diffSeries(&got.Series[i], &want.Series[i]); d != "" {
			return fmt.Sprintf("series %d: %s", i, d)
		}
	}
	if len(got.Metadata) != len(want.Metadata) {
		return fmt.Sprintf("%d metadata, want %d", len(got.Metadata), len(want.Metadata))
	}
	for i := range got.Metadata {
		if got.Metadata[i] != want.Metadata[i] {
			return fmt.Sprintf("metadata %d: %+v, want %+v", i, got.Metadata[i], want.Metadata[i])
		}
	}
	return ""
}

func diffSeries(got, want *Series) string {
	if d := diffLabels(got.Labels, want.Labels); d != "" {
		return d
	}
	if len(got.Samples) != len(want.Samples) {
		return fmt.Sprintf("%d samples, want %d", len(got.Samples), len(want.Samples))
	}
	for i, s := range got.Samples {
		w := want.Samples[i]
		if math.Float64bits(s.Value) != math.Float64bits(w.Value) || s.Timestamp != w.Timestamp {
			return fmt.Sprintf("sample %d: %s, want %s", i, fmtSample(s), fmtSample(w))
		}
	}
	if len(got.Exemplars) != len(want.Exemplars) {
		return fmt.Sprintf("%d exemplars, want %d", len(got.Exemplars), len(want.Exemplars))
	}
	for i, e := range got.Exemplars {
		w := want.Exemplars[i]
		if d := diffLabels(e.Labels, w.Labels); d != "" {
			return fmt.Sprintf("exemplar %d: %s", i, d)
		}
		if math.Float64bits(e.Value) != math.Float64bits(w.Value) || e.Timestamp != w.Timestamp {
			return fmt.Sprintf("exemplar %d: %x@%d, want %x@%d", i, math.Float64bits(e.Value), e.Timestamp, math.Float64bits(w.Value), w.Timestamp)
		}
	}
	if len(got.Histograms) != len(want.Histograms) {
		return fmt.Sprintf("%d histograms, want %d", len(got.Histograms), len(want.Histograms))
	}
	for i := range got.Histograms {
		if g, w := fmtHistogram(&got.Histograms[i]), fmtHistogram(&want.Histograms[i]); g != w {
			return fmt.Sprintf("histogram %d:\n got %s\nwant %s", i, g, w)
		}
	}
	return ""
}

func diffLabels(got, want []Label) string {
	if len(got) != len(want) {
		return fmt.Sprintf("labels %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("labels %v, want %v", got, want)
		}
	}
	return ""
}

func fmtSample(s Sample) string {
	return fmt.Sprintf("%v(%#x)@%d", s.Value, math.Float64bits(s.Value), s.Timestamp)
}

// fmtHistogram prints every field of h with floats as bits, for comparison.
func fmtHistogram(h *Histogram) string {
	var b strings.Builder
	f := func(v float64) string { return strconv.FormatUint(math.Float64bits(v), 16) }
	fs := func(v []float64) string {
		out := make([]string, len(v))
		for i := range v {
			out[i] = f(v[i])
		}
		return "[" + strings.Join(out, " ") + "]"
	}
	fmt.Fprintf(&b, "float=%v count=%d/%s sum=%s schema=%d zt=%s zc=%d/%s ",
		h.IsFloat, h.CountInt, f(h.CountFloat), f(h.Sum), h.Schema, f(h.ZeroThreshold), h.ZeroCountInt, f(h.ZeroCountFloat))
	fmt.Fprintf(&b, "nspans=%v nd=%v nc=%s pspans=%v pd=%v pc=%s hint=%d ts=%d cv=%s",
		spansOrEmpty(h.NegativeSpans), int64sOrEmpty(h.NegativeDeltas), fs(h.NegativeCounts),
		spansOrEmpty(h.PositiveSpans), int64sOrEmpty(h.PositiveDeltas), fs(h.PositiveCounts),
		h.ResetHint, h.Timestamp, fs(h.CustomValues))
	return b.String()
}

func spansOrEmpty(s []BucketSpan) []BucketSpan {
	if s == nil {
		return []BucketSpan{}
	}
	return s
}

func int64sOrEmpty(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// Builders of realistic requests.

// nodeExporterRequest returns n series shaped like node_exporter's behind a
// Kubernetes scrape: 10 labels each, one sample each.
func nodeExporterRequest(n int) *prompb.WriteRequest {
	metrics := []struct{ name, l1, l2 string }{
		{"node_cpu_seconds_total", "cpu", "mode"},
		{"node_filesystem_avail_bytes", "device", "mountpoint"},
		{"node_network_receive_bytes_total", "device", "direction"},
		{"node_disk_io_time_seconds_total", "device", "controller"},
		{"node_memory_MemAvailable_bytes", "numa", "zone"},
	}
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	devices := []string{"nvme0n1", "nvme1n1", "eth0", "/dev/mapper/vg0-root", "tmpfs", "sda1"}
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, n)}
	for i := range n {
		m := metrics[i%len(metrics)]
		host := i / 40
		v2 := modes[i%len(modes)]
		if m.l2 == "mountpoint" {
			v2 = "/var/lib/kubelet/pods/" + strconv.Itoa(i*7919%100000) + "/volumes"
		}
		wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: m.name},
				{Name: "cluster", Value: "prod-eu-west-1"},
				{Name: "container", Value: "node-exporter"},
				{Name: "endpoint", Value: "http-metrics"},
				{Name: "instance", Value: fmt.Sprintf("10.%d.%d.%d:9100", host/65536%256, host/256%256, host%256)},
				{Name: "job", Value: "node-exporter"},
				{Name: "namespace", Value: "monitoring"},
				{Name: "pod", Value: fmt.Sprintf("node-exporter-%05x", host*2654435761%1048576)},
				{Name: m.l1, Value: devices[i%len(devices)]},
				{Name: m.l2, Value: v2},
			},
			Samples: []prompb.Sample{{Value: float64(i) * 1234.5678, Timestamp: 1764043200000 + int64(i%15)}},
		})
	}
	return wr
}

// richRequest exercises every field: special floats, exemplars, integer,
// float and custom-bucket histograms, and metadata.
func richRequest() *prompb.WriteRequest {
	lbls := func(kv ...string) []prompb.Label {
		var out []prompb.Label
		for i := 0; i < len(kv); i += 2 {
			out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	return &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels: lbls("__name__", "up", "job", "api", "instance", "ünïcödé:80", "empty", ""),
				Samples: []prompb.Sample{
					{Value: 1, Timestamp: 1000}, {Value: math.NaN(), Timestamp: 2000},
					{Value: staleNaN, Timestamp: 3000}, {Value: math.Inf(1), Timestamp: 4000},
					{Value: math.Inf(-1), Timestamp: -5000}, {Value: math.SmallestNonzeroFloat64},
					{Value: math.MaxFloat64, Timestamp: math.MaxInt64}, {Value: 0, Timestamp: math.MinInt64},
				},
			},
			{
				Labels:  lbls("__name__", "http_request_duration_seconds_bucket", "le", "0.25"),
				Samples: []prompb.Sample{{Value: 42, Timestamp: 1764043200000}},
				Exemplars: []prompb.Exemplar{
					{Labels: lbls("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "span_id", "00f067aa0ba902b7"), Value: 0.19, Timestamp: 1764043199123},
					{Labels: lbls("trace_id", "a"), Value: math.NaN()},
				},
			},
			{
				Labels: lbls("__name__", "rpc_latency_seconds"),
				Histograms: []prompb.Histogram{
					{
						Count: &prompb.Histogram_CountInt{CountInt: 19}, Sum: 27.5, Schema: 1, ZeroThreshold: 1e-128,
						ZeroCount:     &prompb.Histogram_ZeroCountInt{ZeroCountInt: 2},
						NegativeSpans: []prompb.BucketSpan{{Offset: -3, Length: 2}}, NegativeDeltas: []int64{1, -1},
						PositiveSpans:  []prompb.BucketSpan{{Offset: 0, Length: 4}, {Offset: 2, Length: 1}},
						PositiveDeltas: []int64{2, 3, -4, 100, -101},
						ResetHint:      prompb.Histogram_NO, Timestamp: 1764043200000,
					},
					{
						Count: &prompb.Histogram_CountFloat{CountFloat: 12.5}, Sum: -3, Schema: -4,
						ZeroCount:     &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: 0.5},
						NegativeSpans: []prompb.BucketSpan{{Offset: 1, Length: 1}}, NegativeCounts: []float64{1.5},
						PositiveSpans:  []prompb.BucketSpan{{Offset: -2, Length: 3}},
						PositiveCounts: []float64{1, math.NaN(), staleNaN},
						ResetHint:      prompb.Histogram_GAUGE, Timestamp: 1764043200015,
					},
					{ // custom buckets (NHCB)
						Count: &prompb.Histogram_CountFloat{CountFloat: 7}, Sum: staleNaN, Schema: -53,
						ZeroCount:      &prompb.Histogram_ZeroCountFloat{},
						PositiveSpans:  []prompb.BucketSpan{{Length: 3}},
						PositiveCounts: []float64{3, 2, 2},
						CustomValues:   []float64{0.1, 0.5, 2.5},
						ResetHint:      prompb.Histogram_YES, Timestamp: 1764043200030,
					},
					{Count: &prompb.Histogram_CountInt{}, ZeroCount: &prompb.Histogram_ZeroCountInt{}, Schema: 8, Timestamp: -1},
				},
			},
			{}, // no labels at all: the distributor rejects it, the wire allows it
		},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Total HTTP requests.", Unit: ""},
			{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "rpc_latency_seconds", Help: "RPC latency.", Unit: "seconds"},
			{Type: prompb.MetricMetadata_STATESET, MetricFamilyName: "x"},
			{},
		},
	}
}

func mustMarshal(wr *prompb.WriteRequest) []byte {
	b, err := wr.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// encodeRequest encodes r with AppendSeries and AppendMetadata.
func encodeRequest(dst []byte, r *Request) []byte {
	for i := range r.Series {
		dst = AppendSeries(dst, &r.Series[i])
	}
	for i := range r.Metadata {
		dst = AppendMetadata(dst, &r.Metadata[i])
	}
	return dst
}
