package remotewrite

import (
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
)

// A tiny protobuf writer for hand-made bodies.

func tag(field, wt int) []byte { return appendVarint(nil, uint64(field)<<3|uint64(wt)) }

func vint(field int, v uint64) []byte { return cat(tag(field, wireVarint), appendVarint(nil, v)) }

func f64(field int, v float64) []byte {
	return binary.LittleEndian.AppendUint64(tag(field, wireFixed64), math.Float64bits(v))
}

func msg(field int, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(tag(field, wireBytes), appendVarint(nil, uint64(len(body))), body)
}

func str(field int, s string) []byte { return msg(field, []byte(s)) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func packedSint(field int, vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = appendVarint(b, zigzagEncode64(v))
	}
	return msg(field, b)
}

func packedDoubles(field int, vs ...float64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return msg(field, b)
}

func label(name, value string) []byte { return msg(1, str(1, name), str(2, value)) }

// unknown is one unknown field of every wire type remote-write allows.
var unknown = cat(vint(99, 7), f64(100, 1.5), str(101, "future"), tag(102, wireFixed32), []byte{1, 2, 3, 4})

// wireVariants are valid bodies that no prompb Marshal writes but that any
// protobuf decoder must accept.
var wireVariants = []struct {
	name string
	body []byte
}{
	{"empty", nil},
	{"unknown fields everywhere", cat(unknown,
		msg(1, unknown, msg(1, unknown, str(1, "a"), unknown, str(2, "b")),
			msg(2, unknown, f64(1, 2), vint(2, 5), unknown),
			msg(3, msg(1, str(1, "t"), unknown), unknown, f64(2, 1)),
			msg(4, unknown, vint(1, 3), msg(11, vint(2, 1), unknown), unknown, packedSint(12, 3))),
		msg(3, unknown, vint(1, 2), unknown, str(2, "m")),
		str(2, "reserved field 2"))},
	{"fields out of order", msg(1,
		msg(2, vint(2, 5), f64(1, 3)),
		msg(1, str(2, "v"), str(1, "n")),
		msg(3, vint(3, 9), f64(2, 1), msg(1, str(1, "a"))),
		msg(1, str(1, "n2")))},
	{"last scalar wins", msg(1,
		msg(1, str(1, "a"), str(1, "b"), str(2, "x"), str(2, "y")),
		msg(2, f64(1, 1), f64(1, 2), vint(2, 3), vint(2, 4)))},
	{"unpacked repeated histogram fields", msg(1, msg(4,
		vint(9, zigzagEncode64(-1)), vint(9, zigzagEncode64(2)),
		vint(12, zigzagEncode64(5)), packedSint(12, 6, 7), vint(12, zigzagEncode64(-8)),
		f64(10, 1.5), packedDoubles(10, 2.5), f64(13, 3.5), f64(16, 0.5), packedDoubles(16, 1, 2), f64(16, 4)))},
	{"interleaved packed chunks", msg(1, msg(4,
		packedSint(12, 1, 2), packedSint(9, -1), packedSint(12, 3), packedSint(9, -2, -3),
		msg(11, vint(1, 2), vint(2, 1)), msg(8, vint(2, 3)), msg(11, vint(2, 4)),
		packedDoubles(13, 1), packedDoubles(10, 2), packedDoubles(13, 3)),
		msg(4, packedSint(12, 9)))},
	{"empty packed fields", msg(1, msg(4, msg(9), msg(10), msg(12), msg(13), msg(16)))},
	{"oneof switches", msg(1,
		msg(4, vint(1, 5), f64(2, 1.5), vint(6, 3), f64(7, 0.25)),
		msg(4, f64(2, 1.5), vint(1, 5), f64(7, 0.25), vint(6, 3)),
		msg(4, f64(2, 2), vint(6, 4)),
		msg(4, vint(1, 2), f64(7, 4)))},
	{"non-minimal varints", cat(
		[]byte{0x8a, 0x00, 0x89, 0x80, 0x00},  // timeseries: tag in 2 bytes, length 9 in 3
		[]byte{0x8a, 0x00, 0x85, 0x00},        // label: tag and length 5 in 2 bytes each
		[]byte{0x8a, 0x00, 0x81, 0x00, 'x'})}, // name "x"
	{"negative enums and wide varints", cat(
		msg(1, msg(4, vint(14, uint64(math.MaxUint64)), vint(4, 1<<40|3), msg(8, vint(1, 1<<33|5), vint(2, 1<<35|7)))),
		msg(3, vint(1, uint64(1<<64-2)), str(2, "neg")))},
	// The value's length is the non-minimal varint 0x80 0x00: the label fast
	// path must not take 0x80 for a length.
	{"non-minimal value length", msg(1, msg(1, str(1, "n"), []byte{0x12, 0x80, 0x00}, str(99, string(make([]byte, 124)))))},
	{"many series and metadata", cat(msg(1), msg(1), msg(3), msg(1, label("a", "")), msg(3, vint(1, 8)))},
}

func TestDecodeMatchesPrompb(t *testing.T) {
	type tc struct {
		name string
		body []byte
	}
	cases := []tc{
		{"node exporter", mustMarshal(nodeExporterRequest(100))},
		{"rich", mustMarshal(richRequest())},
		{"empty request", mustMarshal(&prompb.WriteRequest{})},
	}
	for _, v := range wireVariants {
		cases = append(cases, tc{v.name, v.body})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want prompb.WriteRequest
			if err := want.Unmarshal(c.body); err != nil {
				t.Fatalf("prompb rejects the case: %v", err)
			}
			var r Request
			if err := Decode(c.body, &r); err != nil {
				t.Fatal(err)
			}
			if d := diffRequest(&r, fromPrompb(&want)); d != "" {
				t.Fatal(d)
			}
			checkCapsCut(t, &r)
			checkViews(t, c.body, &r)
		})
	}
}

// checkCapsCut checks that appending to one decoded slice cannot overwrite
// its neighbour.
func checkCapsCut(t *testing.T, r *Request) {
	t.Helper()
	for i, s := range r.Series {
		if cap(s.Labels) != len(s.Labels) || cap(s.Samples) != len(s.Samples) ||
			cap(s.Exemplars) != len(s.Exemplars) || cap(s.Histograms) != len(s.Histograms) {
			t.Fatalf("series %d: a slice has spare capacity", i)
		}
		for _, h := range s.Histograms {
			if cap(h.PositiveDeltas) != len(h.PositiveDeltas) || cap(h.CustomValues) != len(h.CustomValues) {
				t.Fatalf("series %d: a histogram slice has spare capacity", i)
			}
		}
	}
}

// checkViews checks that decoded strings point into body.
func checkViews(t *testing.T, body []byte, r *Request) {
	t.Helper()
	in := func(s string) bool {
		if s == "" {
			return true
		}
		p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(body))
	}
	for _, s := range r.Series {
		for _, l := range s.Labels {
			if !in(l.Name) || !in(l.Value) {
				t.Fatalf("label %q=%q is a copy, not a view into the body", l.Name, l.Value)
			}
		}
		for _, e := range s.Exemplars {
			for _, l := range e.Labels {
				if !in(l.Name) || !in(l.Value) {
					t.Fatalf("exemplar label %q=%q is a copy", l.Name, l.Value)
				}
			}
		}
	}
	for _, m := range r.Metadata {
		if !in(m.FamilyName) || !in(m.Help) || !in(m.Unit) {
			t.Fatalf("metadata %+v is a copy", m)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	hist := func(parts ...[]byte) []byte { return msg(1, msg(4, parts...)) }
	for _, tc := range []struct {
		name    string
		body    []byte
		wantErr string
		// gogoAccepts marks a deliberate difference: prompb's generated
		// Unmarshal accepts this body, Decode is stricter.
		gogoAccepts bool
	}{
		{"truncated tag", []byte{0x8a}, "decode write request: field tag: varint at offset 0 is truncated: message ends at offset 1", false},
		{"truncated length", []byte{0x0a, 0x80}, "timeseries 0: varint at offset 1 is truncated", false},
		{"length beyond body", []byte{0x0a, 0x05, 0x0a}, "timeseries 0: length 5 exceeds remaining 1 bytes at offset 1", false},
		{"huge length", cat(tag(1, wireBytes), appendVarint(nil, 1<<62)), "timeseries 0: length 4611686018427387904 exceeds remaining 0 bytes at offset 1", false},
		{"label beyond series", cat(msg(1, label("a", "b")), msg(1, label("a", "b"), label("c", "d"), []byte{0x0a, 0x7f, 0x0a})),
			"decode write request: timeseries 1: label 2: length 127 exceeds remaining 1 bytes at offset 29", false},
		{"label name beyond label", msg(1, msg(1, []byte{0x0a, 0x09, 'x'})), "timeseries 0: label 0: name: length 9 exceeds remaining 1 bytes at offset 5", false},
		{"label value truncated", msg(1, msg(1, str(1, "n"), []byte{0x12})), "timeseries 0: label 0: value: varint at offset 8 is truncated", false},
		{"timeseries as varint", vint(1, 3), "field 1 (timeseries) has wire type 0 (varint), want 2 (length-delimited) at offset 0", false},
		{"metadata as fixed64", f64(3, 1), "field 3 (metadata) has wire type 1 (fixed64), want 2 (length-delimited) at offset 0", false},
		{"samples as fixed64", msg(1, f64(2, 1)), "timeseries 0: field 2 (samples) has wire type 1 (fixed64), want 2 (length-delimited) at offset 2", false},
		{"label name as varint", msg(1, msg(1, vint(1, 1))), "timeseries 0: label 0: field 1 (name) has wire type 0 (varint), want 2 (length-delimited)", false},
		{"sample value as varint", msg(1, msg(2, vint(1, 1))), "timeseries 0: sample 0: field 1 (value) has wire type 0 (varint), want 1 (fixed64) at offset 4", false},
		{"sample value short", msg(1, msg(2, tag(1, wireFixed64), []byte{1, 2, 3})), "timeseries 0: sample 0: value: fixed64 at offset 5 needs 8 bytes, 3 remain", false},
		{"sample timestamp as bytes", msg(1, msg(2, str(2, "x"))), "timeseries 0: sample 0: field 2 (timestamp) has wire type 2 (length-delimited), want 0 (varint)", false},
		{"exemplar label truncated", msg(1, msg(3, msg(1, []byte{0x0a}))), "timeseries 0: exemplar 0: label 0: name: varint at offset 7 is truncated", false},
		{"exemplar value short", msg(1, msg(3, tag(2, wireFixed64))), "timeseries 0: exemplar 0: value: fixed64 at offset 5 needs 8 bytes, 0 remain", false},
		{"second exemplar bad", msg(1, msg(3, f64(2, 1)), msg(3, vint(2, 1))), "timeseries 0: exemplar 1: field 2 (value) has wire type 0 (varint), want 1 (fixed64)", false},
		{"varint of 11 bytes", msg(1, msg(2, tag(2, wireVarint), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})),
			"timeseries 0: sample 0: timestamp: varint at offset 5 overflows 64 bits", false},
		{"varint 10th byte too big", msg(1, msg(2, tag(2, wireVarint), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
			"timeseries 0: sample 0: timestamp: varint at offset 5 overflows 64 bits", true},
		{"field number 0", []byte{0x02, 0x00}, "decode write request: invalid field number 0 at offset 0", false},
		{"field number too large", cat(appendVarint(nil, uint64(maxFieldNumber+1)<<3|wireVarint), []byte{1}), "invalid field number 536870912 at offset 0", true},
		{"start group", cat(tag(9, wireStartGroup), tag(9, wireEndGroup)), "unknown field 9 at offset 0 uses deprecated group wire type 3", true},
		{"end group", msg(1, tag(9, wireEndGroup)), "timeseries 0: unknown field 9 at offset 2 uses deprecated group wire type 4", false},
		{"group in label", msg(1, msg(1, tag(5, wireStartGroup), tag(5, wireEndGroup))), "timeseries 0: label 0: unknown field 5 at offset 4 uses deprecated group wire type 3", true},
		{"wire type 6", []byte{9<<3 | 6}, "field 9 at offset 0 has invalid wire type 6", false},
		{"wire type 7", msg(3, []byte{9<<3 | 7}), "metadata 0: field 9 at offset 2 has invalid wire type 7", false},
		{"unknown fixed64 short", cat(tag(9, wireFixed64), []byte{1, 2}), "unknown field 9: fixed64 at offset 1 needs 8 bytes, 2 remain", false},
		{"unknown fixed32 short", msg(1, tag(9, wireFixed32), []byte{1}), "timeseries 0: unknown field 9: fixed32 at offset 3 needs 4 bytes, 1 remain", false},
		{"unknown bytes beyond", msg(1, msg(2, tag(9, wireBytes), []byte{5})), "timeseries 0: sample 0: unknown field 9: length 5 exceeds remaining 0 bytes at offset 5", false},
		{"unknown varint truncated", cat(tag(9, wireVarint), []byte{0x80}), "unknown field 9: varint at offset 1 is truncated", false},
		{"histogram count_float as varint", hist(vint(2, 1)), "timeseries 0: histogram 0: field 2 (count_float) has wire type 0 (varint), want 1 (fixed64) at offset 4", false},
		{"histogram deltas as fixed64", hist(f64(12, 1)), "timeseries 0: histogram 0: field 12 (positive_deltas) has wire type 1 (fixed64), want 0 (varint) or 2 (length-delimited)", false},
		{"histogram counts as varint", hist(vint(13, 1)), "field 13 (positive_counts) has wire type 0 (varint), want 1 (fixed64) or 2 (length-delimited)", false},
		{"histogram custom values as fixed32", hist(tag(16, wireFixed32), []byte{0, 0, 0, 0}), "field 16 (custom_values) has wire type 5 (fixed32), want 1 (fixed64) or 2 (length-delimited)", false},
		{"histogram spans as varint", hist(vint(8, 1)), "field 8 (negative_spans) has wire type 0 (varint), want 2 (length-delimited)", false},
		{"histogram sum short", hist(tag(3, wireFixed64), []byte{0}), "timeseries 0: histogram 0: sum: fixed64 at offset 5 needs 8 bytes, 1 remain", false},
		{"histogram schema truncated", hist(tag(4, wireVarint), []byte{0x80}), "timeseries 0: histogram 0: schema: varint at offset 5 is truncated", false},
		{"packed delta truncated", hist(msg(12, []byte{0x02, 0x81})), "timeseries 0: histogram 0: positive_deltas: last packed varint is truncated at offset 7", false},
		{"packed delta overflow", hist(msg(9, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})), "histogram 0: negative_deltas: varint at offset 6 overflows 64 bits", true},
		{"packed deltas beyond", hist(tag(9, wireBytes), []byte{3, 1}), "histogram 0: negative_deltas: length 3 exceeds remaining 1 bytes at offset 5", false},
		{"packed doubles ragged", hist(msg(10, make([]byte, 12))), "histogram 0: negative_counts: packed doubles at offset 5: length 12 is not a multiple of 8", false},
		{"unpacked count short", hist(tag(13, wireFixed64), []byte{1}), "histogram 0: positive_counts: fixed64 at offset 5 needs 8 bytes, 1 remain", false},
		{"custom values ragged", hist(msg(16, make([]byte, 7))), "histogram 0: custom_values: packed doubles at offset 6: length 7 is not a multiple of 8", false},
		{"span length as fixed64", hist(msg(11, vint(1, 2)), msg(11, f64(2, 1))), "timeseries 0: histogram 0: positive_spans 1: field 2 (length) has wire type 1 (fixed64), want 0 (varint)", false},
		{"span offset truncated", hist(msg(8, tag(1, wireVarint))), "histogram 0: negative_spans 0: offset: varint at offset 7 is truncated", false},
		{"second histogram bad", cat(msg(1, msg(4), msg(4, vint(15, 1), []byte{0x78}))), "timeseries 0: histogram 1: timestamp: varint at offset 9 is truncated", false},
		{"metadata type as bytes", msg(3, str(1, "counter")), "metadata 0: field 1 (type) has wire type 2 (length-delimited), want 0 (varint)", false},
		{"metadata help beyond", cat(msg(3), msg(3, []byte{0x22, 0x10})), "metadata 1: help: length 16 exceeds remaining 0 bytes at offset 5", false},
		{"metadata unit as fixed32", msg(3, tag(5, wireFixed32), []byte{1, 2, 3, 4}), "metadata 0: field 5 (unit) has wire type 5 (fixed32), want 2 (length-delimited)", false},
		{"metadata type truncated", msg(3, []byte{0x08}), "metadata 0: type: varint at offset 3 is truncated", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{}
			if err := Decode(mustMarshal(richRequest()), r); err != nil {
				t.Fatal(err)
			}
			err := Decode(tc.body, r)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			if len(r.Series) != 0 || len(r.Metadata) != 0 {
				t.Fatalf("after an error the request holds %d series, %d metadata; want it empty", len(r.Series), len(r.Metadata))
			}
			var wr prompb.WriteRequest
			if gogoErr := wr.Unmarshal(tc.body); (gogoErr == nil) != tc.gogoAccepts {
				t.Fatalf("prompb's Unmarshal returned %v, gogoAccepts=%v", gogoErr, tc.gogoAccepts)
			}
		})
	}
}

// TestDecodeReuse decodes requests of different shapes one after the other
// into the same Request: growing backing arrays must not corrupt what was
// carved before, and shrinking must not leave stale series.
func TestDecodeReuse(t *testing.T) {
	bodies := [][]byte{
		mustMarshal(nodeExporterRequest(3)),
		mustMarshal(richRequest()),
		mustMarshal(nodeExporterRequest(500)),
		wireVariants[4].body,
		mustMarshal(richRequest()),
		mustMarshal(&prompb.WriteRequest{}),
		wireVariants[5].body,
		mustMarshal(nodeExporterRequest(1000)),
	}
	// A big rich request grows the histogram arrays mid-decode.
	big := &prompb.WriteRequest{}
	for range 50 {
		big.Timeseries = append(big.Timeseries, richRequest().Timeseries...)
	}
	bodies = append(bodies, mustMarshal(big), mustMarshal(nodeExporterRequest(2)), mustMarshal(big))
	r := NewRequest()
	for i, body := range bodies {
		var want prompb.WriteRequest
		if err := want.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
		if err := Decode(body, r); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if d := diffRequest(r, fromPrompb(&want)); d != "" {
			t.Fatalf("body %d: %s", i, d)
		}
		checkCapsCut(t, r)
		checkViews(t, body, r)
	}
}

func TestDecodeAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"node exporter 2000", mustMarshal(nodeExporterRequest(2000))},
		{"rich", mustMarshal(richRequest())},
		{"wire variants", cat(wireVariants[1].body, wireVariants[4].body, wireVariants[5].body, wireVariants[7].body)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			if err := Decode(tc.body, r); err != nil {
				t.Fatal(err)
			}
			allocs := testing.AllocsPerRun(20, func() {
				if err := Decode(tc.body, r); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Fatalf("steady-state Decode allocates %v times, want 0", allocs)
			}
		})
	}
}

func TestSampleCount(t *testing.T) {
	r := NewRequest()
	if err := Decode(mustMarshal(richRequest()), r); err != nil {
		t.Fatal(err)
	}
	if s, h, e := r.SampleCount(); s != 9 || h != 4 || e != 2 {
		t.Fatalf("SampleCount() = %d, %d, %d; want 9, 4, 2", s, h, e)
	}
	r.Reset()
	if s, h, e := r.SampleCount(); s+h+e != 0 || len(r.Series)+len(r.Metadata) != 0 {
		t.Fatalf("after Reset: SampleCount() = %d, %d, %d, %d series", s, h, e, len(r.Series))
	}
}

// TestDecodeMemoryBound checks that what Decode allocates is bounded by a
// constant factor of the body, even for bodies made to inflate: the
// smallest message of each kind, repeated.
func TestDecodeMemoryBound(t *testing.T) {
	many := func(n int, part []byte) []byte { return []byte(strings.Repeat(string(part), n)) }
	// An empty message costs 2 body bytes and one element of its Go type;
	// append at most doubles the capacity: at most sizeof bytes per byte.
	size := func(v any) float64 { return float64(reflect.TypeOf(v).Size()) }
	for _, tc := range []struct {
		name     string
		body     []byte
		maxRatio float64 // bytes held per body byte
	}{
		{"standard request", mustMarshal(nodeExporterRequest(2000)), 3},
		{"rich", mustMarshal(richRequest()), 8},
		{"empty series", many(10000, msg(1)), size(Series{})},
		{"empty labels", msg(1, many(60000, msg(1))), size(Label{})},
		{"empty samples", msg(1, many(60000, msg(2))), size(Sample{})},
		{"empty exemplars", msg(1, many(60000, msg(3))), size(Exemplar{})},
		{"empty histograms", msg(1, many(60000, msg(4))), size(Histogram{})},
		{"empty spans", msg(1, msg(4, many(60000, msg(8)))), size(BucketSpan{})},
		{"1-byte deltas", msg(1, msg(4, msg(12, many(100000, []byte{1})))), 8.5}, // grown once, exactly
		{"empty metadata", many(10000, msg(3)), size(Metadata{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			if err := Decode(tc.body, r); err != nil {
				t.Fatal(err)
			}
			if ratio := float64(r.RetainedBytes()) / float64(len(tc.body)); ratio > tc.maxRatio {
				t.Fatalf("decoding %d bytes holds %d bytes (%.1f per body byte), want at most %.1f",
					len(tc.body), r.RetainedBytes(), ratio, tc.maxRatio)
			}
		})
	}
}
