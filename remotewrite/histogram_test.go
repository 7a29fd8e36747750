package remotewrite

import (
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
)

func TestHistogramConversions(t *testing.T) {
	wr := richRequest()
	for _, ts := range wireVariantsWithHistograms(t) {
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	body := mustMarshal(wr)
	var want prompb.WriteRequest
	if err := want.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	r := NewRequest()
	if err := Decode(body, r); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, ts := range want.Timeseries {
		for j, ph := range ts.Histograms {
			n++
			t.Run(fmt.Sprintf("series %d histogram %d", i, j), func(t *testing.T) {
				h := &r.Series[i].Histograms[j]
				if ph.ResetHint < 0 || ph.ResetHint > 3 {
					// Deliberate difference: prompb passes an undefined
					// hint through, ToHistogram maps it to unknown.
					ph.ResetHint = prompb.Histogram_UNKNOWN
				}
				if got, want := fmt.Sprintf("%#v", h.ToHistogram()), fmt.Sprintf("%#v", ph.ToIntHistogram()); got != want {
					t.Errorf("ToHistogram:\n got %s\nwant %s", got, want)
				}
				gotF, wantF := h.ToFloatHistogram(), ph.ToFloatHistogram()
				if d := diffFloatHistogram(gotF, wantF); d != "" {
					t.Errorf("ToFloatHistogram: %s", d)
				}
			})
		}
	}
	if n < 6 {
		t.Fatalf("only %d histograms compared", n)
	}
}

// wireVariantsWithHistograms returns the histogram-carrying series of the
// wire variants, as prompb decodes them.
func wireVariantsWithHistograms(t *testing.T) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for _, v := range wireVariants {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(v.body); err != nil {
			t.Fatal(err)
		}
		for _, ts := range wr.Timeseries {
			if len(ts.Histograms) > 0 {
				out = append(out, ts)
			}
		}
	}
	return out
}

// diffFloatHistogram compares like reflect.DeepEqual, but floats bit for bit.
func diffFloatHistogram(got, want *histogram.FloatHistogram) string {
	bits := func(f []float64) []uint64 {
		if f == nil {
			return nil
		}
		out := make([]uint64, len(f))
		for i := range f {
			out[i] = math.Float64bits(f[i])
		}
		return out
	}
	type flat struct {
		Hint               histogram.CounterResetHint
		Schema             int32
		ZT, ZC, Count, Sum uint64
		NS, PS             []histogram.Span
		NB, PB, CV         []uint64
	}
	g := flat{got.CounterResetHint, got.Schema, math.Float64bits(got.ZeroThreshold), math.Float64bits(got.ZeroCount),
		math.Float64bits(got.Count), math.Float64bits(got.Sum), got.NegativeSpans, got.PositiveSpans,
		bits(got.NegativeBuckets), bits(got.PositiveBuckets), bits(got.CustomValues)}
	w := flat{want.CounterResetHint, want.Schema, math.Float64bits(want.ZeroThreshold), math.Float64bits(want.ZeroCount),
		math.Float64bits(want.Count), math.Float64bits(want.Sum), want.NegativeSpans, want.PositiveSpans,
		bits(want.NegativeBuckets), bits(want.PositiveBuckets), bits(want.CustomValues)}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("\n got %+v\nwant %+v", g, w)
	}
	return ""
}

// TestHistogramConversionsCopy checks that converted histograms survive the
// next Decode into the same Request, which overwrites the backing arrays.
func TestHistogramConversionsCopy(t *testing.T) {
	body := mustMarshal(richRequest())
	r := NewRequest()
	if err := Decode(body, r); err != nil {
		t.Fatal(err)
	}
	hs := r.Series[2].Histograms
	ih, fh, cf := hs[0].ToHistogram(), hs[0].ToFloatHistogram(), hs[2].ToFloatHistogram()
	want := fmt.Sprintf("%v %v %v", ih, fh, cf)
	overwrite := cat(msg(1, msg(4, packedSint(9, 7, 7, 7, 7), packedSint(12, 7, 7, 7, 7, 7, 7),
		msg(8, vint(1, 9), vint(2, 9)), msg(11, vint(1, 9), vint(2, 9)), msg(11, vint(1, 9), vint(2, 9)),
		packedDoubles(13, 9, 9, 9, 9), packedDoubles(16, 9, 9, 9, 9))))
	if err := Decode(overwrite, r); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %v %v", ih, fh, cf); got != want {
		t.Fatalf("conversions changed with the next Decode:\n got %s\nwant %s", got, want)
	}
}

func TestCounterResetHint(t *testing.T) {
	for _, tc := range []struct {
		in   int32
		want histogram.CounterResetHint
	}{
		{ResetHintUnknown, histogram.UnknownCounterReset},
		{ResetHintYes, histogram.CounterReset},
		{ResetHintNo, histogram.NotCounterReset},
		{ResetHintGauge, histogram.GaugeType},
		{4, histogram.UnknownCounterReset}, // prompb: CounterResetHint(4), undefined
		{-1, histogram.UnknownCounterReset},
	} {
		h := Histogram{ResetHint: tc.in}
		if got := h.ToHistogram().CounterResetHint; got != tc.want {
			t.Errorf("ToHistogram with ResetHint %d: hint %v, want %v", tc.in, got, tc.want)
		}
		if got := h.ToFloatHistogram().CounterResetHint; got != tc.want {
			t.Errorf("ToFloatHistogram with ResetHint %d: hint %v, want %v", tc.in, got, tc.want)
		}
	}
	if (&Histogram{IsFloat: true}).ToHistogram() != nil {
		t.Error("ToHistogram of a float histogram is not nil")
	}
}

func TestFromHistogramRoundTrip(t *testing.T) {
	h := &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset, Count: 19, Sum: 27.5, Schema: 1, ZeroThreshold: 1e-128, ZeroCount: 2,
		NegativeSpans: []histogram.Span{{Offset: -3, Length: 2}}, NegativeBuckets: []int64{1, -1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}, {Offset: 2, Length: 1}}, PositiveBuckets: []int64{2, 3, -4, 100, -101},
	}
	x := FromHistogram(5, h)
	if got := x.ToHistogram(); x.Timestamp != 5 || !got.Equals(h) || got.CounterResetHint != h.CounterResetHint {
		t.Fatalf("round trip: %+v, want %+v", x.ToHistogram(), h)
	}
	fh := &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType, Count: 7, Sum: 3, Schema: histogram.CustomBucketsSchema, CustomValues: []float64{0.1, 0.5},
		PositiveSpans: []histogram.Span{{Length: 3}}, PositiveBuckets: []float64{3, 2, 2},
	}
	y := FromFloatHistogram(6, fh)
	if got := y.ToFloatHistogram(); !got.Equals(fh) || got.CounterResetHint != fh.CounterResetHint {
		t.Fatalf("round trip: %+v, want %+v", got, fh)
	}
}
