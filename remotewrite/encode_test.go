package remotewrite

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

// roundTrip encodes r, checks that Decode and prompb both read back what r
// holds, and returns the encoded body.
func roundTrip(t testing.TB, r *Request) []byte {
	t.Helper()
	body := encodeRequest(nil, r)
	var back Request
	if err := Decode(body, &back); err != nil {
		t.Fatalf("decode what AppendSeries wrote: %v", err)
	}
	if d := diffRequest(&back, r); d != "" {
		t.Fatalf("round trip through Decode: %s", d)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(body); err != nil {
		t.Fatalf("prompb rejects what AppendSeries wrote: %v", err)
	}
	if d := diffRequest(fromPrompb(&wr), r); d != "" {
		t.Fatalf("round trip through prompb: %s", d)
	}
	return body
}

func TestAppendRoundTrip(t *testing.T) {
	type tc struct {
		name string
		body []byte
	}
	cases := []tc{
		{"node exporter", mustMarshal(nodeExporterRequest(100))},
		{"rich", mustMarshal(richRequest())},
	}
	for _, v := range wireVariants {
		cases = append(cases, tc{v.name, v.body})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Request
			if err := Decode(c.body, &r); err != nil {
				t.Fatal(err)
			}
			roundTrip(t, &r)
		})
	}
}

// TestAppendMatchesMarshal checks that for what Prometheus sends, the
// encoding is byte for byte prompb's.
func TestAppendMatchesMarshal(t *testing.T) {
	for name, wr := range map[string]*prompb.WriteRequest{
		"node exporter": nodeExporterRequest(100),
		"rich":          richRequest(),
		"empty":         {},
	} {
		t.Run(name, func(t *testing.T) {
			want := mustMarshal(wr)
			if got := encodeRequest(nil, fromPrompb(wr)); !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from prompb's Marshal:\n got %x\nwant %x", got, want)
			}
		})
	}
}

// TestAppendHandBuilt round-trips series built by hand, among them values
// that prompb's Marshal would lose.
func TestAppendHandBuilt(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name string
		r    Request
	}{
		{"nothing", Request{Series: []Series{{}}, Metadata: []Metadata{{}}}},
		{"negative zero", Request{Series: []Series{{
			Labels:     []Label{{"__name__", "x"}},
			Samples:    []Sample{{negZero, 1}, {0, 0}, {staleNaN, -1}},
			Exemplars:  []Exemplar{{Value: negZero}},
			Histograms: []Histogram{{IsFloat: true, CountFloat: negZero, Sum: negZero, ZeroThreshold: negZero, ZeroCountFloat: negZero}},
		}}}},
		{"float histogram with zero count stays float", Request{Series: []Series{{
			Histograms: []Histogram{{IsFloat: true}, {}},
		}}}},
		{"mixed zero count oneof", Request{Series: []Series{{
			Histograms: []Histogram{{IsFloat: true, CountFloat: 2, ZeroCountInt: 3}, {CountInt: 2, ZeroCountFloat: 0.5}},
		}}}},
		{"extremes", Request{Series: []Series{{
			Labels:  []Label{{"a", string(make([]byte, 300))}, {"", "v"}, {"n", ""}},
			Samples: []Sample{{math.MaxFloat64, math.MaxInt64}, {-math.MaxFloat64, math.MinInt64}},
			Histograms: []Histogram{{
				CountInt: math.MaxUint64, Schema: math.MinInt32, ZeroCountInt: math.MaxUint64,
				NegativeSpans:  []BucketSpan{{math.MinInt32, math.MaxUint32}, {}},
				NegativeDeltas: []int64{math.MinInt64, math.MaxInt64, 0},
				PositiveSpans:  []BucketSpan{{math.MaxInt32, 1}},
				PositiveDeltas: []int64{-1},
				ResetHint:      -1, Timestamp: math.MinInt64,
				CustomValues: []float64{math.Inf(-1), math.NaN()},
			}},
		}}, Metadata: []Metadata{{Type: -5, FamilyName: "f", Help: string(make([]byte, 200)), Unit: "u"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) { roundTrip(t, &tc.r) })
	}
}

func TestAppendAllocs(t *testing.T) {
	var r Request
	if err := Decode(cat(mustMarshal(nodeExporterRequest(100)), mustMarshal(richRequest())), &r); err != nil {
		t.Fatal(err)
	}
	buf := encodeRequest(nil, &r)
	allocs := testing.AllocsPerRun(20, func() {
		buf = encodeRequest(buf[:0], &r)
	})
	if allocs != 0 {
		t.Fatalf("AppendSeries and AppendMetadata allocate %v times with a big enough buffer, want 0", allocs)
	}
}

// TestAppendGrowsOnce checks that the size is computed up front: one entry
// grows a too small buffer to exactly its size.
func TestAppendGrowsOnce(t *testing.T) {
	var r Request
	if err := Decode(mustMarshal(richRequest()), &r); err != nil {
		t.Fatal(err)
	}
	for i := range r.Series {
		want := len(AppendSeries(nil, &r.Series[i]))
		allocs := testing.AllocsPerRun(10, func() {
			if got := AppendSeries(make([]byte, 0, 1), &r.Series[i]); len(got) != want {
				t.Fatalf("series %d: %d bytes, want %d", i, len(got), want)
			}
		})
		if allocs > 2 { // the make above and one growth
			t.Fatalf("series %d: %v allocations, want at most 2", i, allocs)
		}
	}
}
