package remotewrite

import (
	"bytes"
	"fmt"

	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	gsnappy "github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// toV2 turns a 1.0 request into the 2.0 request a Prometheus 3 sender
// would write for it: one symbols table, each series' metadata from the
// 1.0 metadata of its family, start timestamps where st gives one.
func toV2(wr *prompb.WriteRequest, st func(series, sample int) int64) *writev2.Request {
	syms := writev2.NewSymbolTable()
	meta := map[string]prompb.MetricMetadata{}
	for _, m := range wr.Metadata {
		meta[m.MetricFamilyName] = m
	}
	refs := func(ls []prompb.Label) []uint32 {
		var out []uint32
		for _, l := range ls {
			out = append(out, syms.Symbolize(l.Name), syms.Symbolize(l.Value))
		}
		return out
	}
	out := &writev2.Request{}
	for i, ts := range wr.Timeseries {
		s := writev2.TimeSeries{LabelsRefs: refs(ts.Labels)}
		for j, x := range ts.Samples {
			s.Samples = append(s.Samples, writev2.Sample{Value: x.Value, Timestamp: x.Timestamp, StartTimestamp: st(i, j)})
		}
		for _, e := range ts.Exemplars {
			s.Exemplars = append(s.Exemplars, writev2.Exemplar{LabelsRefs: refs(e.Labels), Value: e.Value, Timestamp: e.Timestamp})
		}
		for j, h := range ts.Histograms {
			v2 := writev2.Histogram{
				Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
				NegativeDeltas: h.NegativeDeltas, NegativeCounts: h.NegativeCounts,
				PositiveDeltas: h.PositiveDeltas, PositiveCounts: h.PositiveCounts,
				ResetHint: writev2.Histogram_ResetHint(h.ResetHint), Timestamp: h.Timestamp,
				CustomValues: h.CustomValues, StartTimestamp: st(i, 100+j),
			}
			switch c := h.Count.(type) {
			case *prompb.Histogram_CountInt:
				v2.Count = &writev2.Histogram_CountInt{CountInt: c.CountInt}
			case *prompb.Histogram_CountFloat:
				v2.Count = &writev2.Histogram_CountFloat{CountFloat: c.CountFloat}
			}
			switch c := h.ZeroCount.(type) {
			case *prompb.Histogram_ZeroCountInt:
				v2.ZeroCount = &writev2.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
			case *prompb.Histogram_ZeroCountFloat:
				v2.ZeroCount = &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
			}
			for _, sp := range h.NegativeSpans {
				v2.NegativeSpans = append(v2.NegativeSpans, writev2.BucketSpan{Offset: sp.Offset, Length: sp.Length})
			}
			for _, sp := range h.PositiveSpans {
				v2.PositiveSpans = append(v2.PositiveSpans, writev2.BucketSpan{Offset: sp.Offset, Length: sp.Length})
			}
			s.Histograms = append(s.Histograms, v2)
		}
		for _, l := range ts.Labels {
			if m, ok := meta[l.Value]; ok && l.Name == "__name__" {
				s.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(m.Type), HelpRef: syms.Symbolize(m.Help), UnitRef: syms.Symbolize(m.Unit)}
			}
		}
		out.Timeseries = append(out.Timeseries, s)
	}
	out.Symbols = syms.Symbols()
	return out
}

func mustMarshalV2(r *writev2.Request) []byte {
	b, err := r.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// fromWritev2 converts what gogo's generated Unmarshal made of a 2.0 body
// into the Request DecodeV2 must make of it, or an error where a reference
// is out of the symbols table.
func fromWritev2(v2 *writev2.Request) (*Request, error) {
	r := &Request{}
	sym := func(ref uint32) (string, error) {
		if int(ref) >= len(v2.Symbols) {
			return "", fmt.Errorf("ref %d of %d", ref, len(v2.Symbols))
		}
		return v2.Symbols[ref], nil
	}
	lbls := func(refs []uint32) ([]Label, error) {
		if len(refs)%2 != 0 {
			return nil, fmt.Errorf("odd refs")
		}
		var out []Label
		for i := 0; i < len(refs); i += 2 {
			n, err := sym(refs[i])
			if err != nil {
				return nil, err
			}
			v, err := sym(refs[i+1])
			if err != nil {
				return nil, err
			}
			out = append(out, Label{n, v})
		}
		return out, nil
	}
	for _, ts := range v2.Timeseries {
		var s Series
		var err error
		if s.Labels, err = lbls(ts.LabelsRefs); err != nil {
			return nil, err
		}
		hasStart := false
		for _, x := range ts.Samples {
			s.Samples = append(s.Samples, Sample{x.Value, x.Timestamp})
			hasStart = hasStart || x.StartTimestamp != 0
		}
		if hasStart {
			for _, x := range ts.Samples {
				s.StartTimestamps = append(s.StartTimestamps, x.StartTimestamp)
			}
		}
		for _, e := range ts.Exemplars {
			ls, err := lbls(e.LabelsRefs)
			if err != nil {
				return nil, err
			}
			s.Exemplars = append(s.Exemplars, Exemplar{ls, e.Value, e.Timestamp})
		}
		for _, h := range ts.Histograms {
			x := Histogram{
				IsFloat: h.IsFloatHistogram(), CountInt: h.GetCountInt(), CountFloat: h.GetCountFloat(),
				Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
				ZeroCountInt: h.GetZeroCountInt(), ZeroCountFloat: h.GetZeroCountFloat(),
				NegativeDeltas: h.NegativeDeltas, NegativeCounts: h.NegativeCounts,
				PositiveDeltas: h.PositiveDeltas, PositiveCounts: h.PositiveCounts,
				ResetHint: int32(h.ResetHint), Timestamp: h.Timestamp, CustomValues: h.CustomValues,
				StartTimestamp: h.StartTimestamp,
			}
			for _, sp := range h.NegativeSpans {
				x.NegativeSpans = append(x.NegativeSpans, BucketSpan{sp.Offset, sp.Length})
			}
			for _, sp := range h.PositiveSpans {
				x.PositiveSpans = append(x.PositiveSpans, BucketSpan{sp.Offset, sp.Length})
			}
			s.Histograms = append(s.Histograms, x)
		}
		r.Series = append(r.Series, s)
		m := ts.Metadata
		var help, unit string // ref 0 is unset
		if m.HelpRef != 0 {
			if help, err = sym(m.HelpRef); err != nil {
				return nil, err
			}
		}
		if m.UnitRef != 0 {
			if unit, err = sym(m.UnitRef); err != nil {
				return nil, err
			}
		}
		if m.Type != 0 || help != "" || unit != "" {
			name := ""
			for _, l := range s.Labels {
				if l.Name == "__name__" {
					name = l.Value
					break
				}
			}
			md := Metadata{MetricType(m.Type), name, help, unit}
			if n := len(r.Metadata); n == 0 || r.Metadata[n-1] != md {
				r.Metadata = append(r.Metadata, md)
			}
		}
	}
	return r, nil
}

// diffRequestV2 is diffRequest plus the created timestamps.
func diffRequestV2(got, want *Request) string {
	if d := diffRequest(got, want); d != "" {
		return d
	}
	for i := range got.Series {
		g, w := got.Series[i].StartTimestamps, want.Series[i].StartTimestamps
		if !reflect.DeepEqual(g, w) && (len(g)+len(w) != 0) {
			return fmt.Sprintf("series %d: start timestamps %v, want %v", i, g, w)
		}
		for j := range got.Series[i].Histograms {
			if g, w := got.Series[i].Histograms[j].StartTimestamp, want.Series[i].Histograms[j].StartTimestamp; g != w {
				return fmt.Sprintf("series %d histogram %d: start timestamp %d, want %d", i, j, g, w)
			}
		}
	}
	return ""
}

func noStart(int, int) int64 { return 0 }

// someStarts gives every other series created timestamps, from its second
// sample on, so that the zero padding of the first is exercised too.
func someStarts(series, sample int) int64 {
	if series%2 == 1 && sample >= 1 {
		return 1764043100000 + int64(series)
	}
	return 0
}

// v2Variants are valid 2.0 bodies no Marshal writes: symbols after the
// series, unpacked and split label references, unknown fields.
var v2Variants = []struct {
	name string
	body []byte
}{
	{"symbols after series", cat(msg(5, packedUint(1, 1, 2), msg(2, f64(1, 3), vint(2, 7))), str(4, ""), str(4, "__name__"), str(4, "up"))},
	{"unpacked refs split across fields", cat(str(4, ""), str(4, "a"), str(4, "b"), msg(5, vint(1, 1), packedUint(1, 2, 1), vint(1, 2), msg(4, vint(1, 1), vint(1, 2), f64(2, 1), vint(3, 9))))},
	{"unknown and reserved fields", cat(unknown, str(4, ""), str(4, "n"), msg(5, unknown, packedUint(1, 1, 1), msg(2, unknown, f64(1, 1), vint(3, 5)), msg(5, unknown, vint(1, 2), vint(3, 1), unknown), str(6, "reserved")))},
	{"metadata only, no name", cat(str(4, ""), str(4, "help"), msg(5, msg(5, vint(1, 1), vint(3, 1))))},
	{"empty metadata message", cat(str(4, ""), str(4, "n"), msg(5, packedUint(1, 1, 1), msg(5)))},
	{"histogram start timestamp", cat(str(4, ""), str(4, "h"), msg(5, packedUint(1, 1, 1), msg(3, vint(1, 3), vint(15, 10), vint(17, 5))))},
}

func packedUint(field int, vs ...uint64) []byte {
	var p []byte
	for _, v := range vs {
		p = appendVarint(p, v)
	}
	return msg(field, p)
}

func TestDecodeV2MatchesPrompb(t *testing.T) {
	type tc struct {
		name string
		body []byte
	}
	cases := []tc{
		{"node exporter", mustMarshalV2(toV2(nodeExporterRequest(100), noStart))},
		{"node exporter with created timestamps", mustMarshalV2(toV2(nodeExporterRequest(100), someStarts))},
		{"rich", mustMarshalV2(toV2(richRequest(), someStarts))},
		{"empty request", mustMarshalV2(&writev2.Request{})},
	}
	for _, v := range v2Variants {
		cases = append(cases, tc{v.name, v.body})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v2 writev2.Request
			if err := v2.Unmarshal(c.body); err != nil {
				t.Fatalf("writev2 rejects the case: %v", err)
			}
			want, err := fromWritev2(&v2)
			if err != nil {
				t.Fatal(err)
			}
			r := NewRequest()
			if err := DecodeV2(c.body, r); err != nil {
				t.Fatal(err)
			}
			if d := diffRequestV2(r, want); d != "" {
				t.Fatal(d)
			}
			checkCapsCut(t, r)
			checkViews(t, c.body, r)
		})
	}
}

// TestDecodeV2SameAsV1 checks the point of DecodeV2: a 2.0 request decodes
// to the Request its 1.0 twin decodes to.
func TestDecodeV2SameAsV1(t *testing.T) {
	wr := nodeExporterRequest(300)
	wr.Metadata = []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds_total", Help: "Seconds the CPUs spent in each mode.", Unit: "seconds"}}
	r1, r2 := NewRequest(), NewRequest()
	if err := Decode(mustMarshal(&prompb.WriteRequest{Timeseries: wr.Timeseries}), r1); err != nil {
		t.Fatal(err)
	}
	if err := DecodeV2(mustMarshalV2(toV2(wr, noStart)), r2); err != nil {
		t.Fatal(err)
	}
	if d := diffSeries(&r1.Series[7], &r2.Series[7]); d != "" {
		t.Fatal(d)
	}
	r2md := r2.Metadata
	r2.Metadata = nil
	if d := diffRequest(r2, r1); d != "" {
		t.Fatal(d)
	}
	// Every 5th series is a node_cpu_seconds_total and carries the same
	// metadata; the others carry none: one entry, equal to the 1.0 one.
	if want := (Metadata{MetricTypeCounter, "node_cpu_seconds_total", wr.Metadata[0].Help, "seconds"}); len(r2md) != 1 || r2md[0] != want {
		t.Fatalf("metadata %+v, want [%+v]", r2md, want)
	}
}

func TestDecodeV2Errors(t *testing.T) {
	syms := cat(str(4, ""), str(4, "__name__"), str(4, "up"), str(4, "job"))
	for _, tc := range []struct {
		name, wantErr string
		body          []byte
		refErr        bool // a *SymbolRefError
	}{
		{"label ref beyond table", "timeseries 0 {__name__=\"up\"}: labels_refs references symbol 9, but the symbols table has 4 entries", cat(syms, msg(5, packedUint(1, 1, 2, 3, 9))), true},
		{"odd label refs", "timeseries 1 {__name__=\"up\"}: labels_refs has an odd number of references", cat(syms, msg(5, packedUint(1, 1, 2)), msg(5, packedUint(1, 1, 2, 3))), true},
		{"no symbols table", "labels_refs references symbol 1, but the symbols table has 0 entries", msg(5, packedUint(1, 1, 2)), true},
		{"exemplar ref beyond table", "exemplar 0 labels_refs references symbol 7", cat(syms, msg(5, packedUint(1, 1, 2), msg(4, packedUint(1, 3, 7)))), true},
		{"exemplar odd refs", "exemplar 1 labels_refs has an odd number", cat(syms, msg(5, packedUint(1, 1, 2), msg(4), msg(4, packedUint(1, 3)))), true},
		{"help ref beyond table", "metadata help_ref references symbol 40", cat(syms, msg(5, packedUint(1, 1, 2), msg(5, vint(3, 40)))), true},
		{"unit ref beyond table", "metadata unit_ref references symbol 4", cat(syms, msg(5, packedUint(1, 1, 2), msg(5, vint(4, 4)))), true},
		{"truncated symbols", "symbols 4: length 9 exceeds remaining 2 bytes", cat(syms, []byte{0x22, 9, 'a', 'b'}), false},
		{"truncated series", "timeseries: length 50 exceeds remaining 1 bytes", cat(syms, []byte{0x2a, 50, 1}), false},
		{"symbols as varint", "field 4 (symbols) has wire type 0 (varint)", vint(4, 1), false},
		{"truncated labels_refs", "timeseries 0: labels_refs: last packed varint is truncated", cat(syms, msg(5, msg(1, []byte{1, 0x82}))), false},
		{"sample start as fixed64", "timeseries 0: sample 0: field 3 (start_timestamp) has wire type 1 (fixed64), want 0 (varint)", cat(syms, msg(5, msg(2, f64(3, 1)))), false},
		{"histogram start truncated", "timeseries 0: histogram 0: start_timestamp: varint at offset", cat(syms, msg(5, msg(3, tag(17, wireVarint), []byte{0x80}))), false},
		{"metadata type as bytes", "timeseries 0: metadata: field 1 (type) has wire type 2", cat(syms, msg(5, msg(5, str(1, "x")))), false},
		{"group", "deprecated group wire type 3", cat(syms, tag(9, wireStartGroup), tag(9, wireEndGroup)), false},
		{"a 1.0 body", "field 1 at offset 0 is reserved in remote-write 2.0", mustMarshal(richRequest()), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			if err := DecodeV2(mustMarshalV2(toV2(richRequest(), someStarts)), r); err != nil {
				t.Fatal(err)
			}
			err := DecodeV2(tc.body, r)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
			var se *SymbolRefError
			if isRef := asSymbolRefError(err, &se); isRef != tc.refErr {
				t.Fatalf("SymbolRefError: %v, want %v", isRef, tc.refErr)
			}
			if len(r.Series)+len(r.Metadata) != 0 {
				t.Fatalf("after an error the request holds %d series, %d metadata", len(r.Series), len(r.Metadata))
			}
		})
	}
}

func asSymbolRefError(err error, se **SymbolRefError) bool {
	for e := err; e != nil; {
		if x, ok := e.(*SymbolRefError); ok {
			*se = x
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// TestDecodeV2Reuse alternates 1.0 and 2.0 bodies of growing size in one
// Request: grown arrays are recarved, start timestamps included.
func TestDecodeV2Reuse(t *testing.T) {
	big := &prompb.WriteRequest{}
	for range 50 {
		big.Timeseries = append(big.Timeseries, richRequest().Timeseries...)
	}
	r := NewRequest()
	for i, wr := range []*prompb.WriteRequest{nodeExporterRequest(3), richRequest(), nodeExporterRequest(700), big, nodeExporterRequest(2), big} {
		for _, v2 := range []bool{true, false} {
			if !v2 {
				if err := Decode(mustMarshal(wr), r); err != nil {
					t.Fatal(err)
				}
				if d := diffRequest(r, fromPrompb(wr)); d != "" {
					t.Fatalf("body %d (1.0): %s", i, d)
				}
				continue
			}
			body := mustMarshalV2(toV2(wr, someStarts))
			var x writev2.Request
			if err := x.Unmarshal(body); err != nil {
				t.Fatal(err)
			}
			want, err := fromWritev2(&x)
			if err != nil {
				t.Fatal(err)
			}
			if err := DecodeV2(body, r); err != nil {
				t.Fatal(err)
			}
			if d := diffRequestV2(r, want); d != "" {
				t.Fatalf("body %d (2.0): %s", i, d)
			}
		}
	}
}

func TestDecodeV2Allocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"node exporter 2000", mustMarshalV2(toV2(nodeExporterRequest(2000), noStart))},
		{"node exporter 2000 with created timestamps", mustMarshalV2(toV2(nodeExporterRequest(2000), someStarts))},
		{"rich", mustMarshalV2(toV2(richRequest(), someStarts))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			if err := DecodeV2(tc.body, r); err != nil {
				t.Fatal(err)
			}
			if allocs := testing.AllocsPerRun(20, func() {
				if err := DecodeV2(tc.body, r); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Fatalf("steady-state DecodeV2 allocates %v times, want 0", allocs)
			}
		})
	}
}

// TestDecodeV2MemoryBound: the worst body is one-byte label references.
func TestDecodeV2MemoryBound(t *testing.T) {
	refs := make([]uint64, 100000)
	for i := range refs {
		refs[i] = uint64(i % 2)
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		maxRatio float64
	}{
		// append grows a large array by 1.25 at least: the bounds allow it.
		{"standard request", mustMarshalV2(toV2(nodeExporterRequest(2000), noStart)), 12},
		{"one-byte refs", cat(str(4, ""), str(4, "a"), msg(5, packedUint(1, refs...))), 16 * 1.25},
		{"empty series", cat(str(4, ""), []byte(strings.Repeat(string(msg(5)), 10000))), float64(reflect.TypeOf(Series{}).Size()) / 2 * 1.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRequest()
			if err := DecodeV2(tc.body, r); err != nil {
				t.Fatal(err)
			}
			if ratio := float64(r.RetainedBytes()) / float64(len(tc.body)); ratio > tc.maxRatio {
				t.Fatalf("decoding %d bytes holds %d bytes (%.1f per body byte), want at most %.1f", len(tc.body), r.RetainedBytes(), ratio, tc.maxRatio)
			}
		})
	}
}

// FuzzDecodeV2 checks that DecodeV2 never panics, and that what it accepts
// gogo's generated writev2 Unmarshal accepts too, with the same content
// (the same deliberate strictness as FuzzDecode's aside).
//
// go test ./remotewrite -run '^$' -fuzz FuzzDecodeV2 -fuzztime 60s
func FuzzDecodeV2(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzDecodeV2; see TestFuzzCorpusV2.
	r := NewRequest()
	f.Fuzz(func(t *testing.T, body []byte) {
		err := DecodeV2(body, r)
		if err != nil {
			if len(r.Series)+len(r.Metadata) != 0 {
				t.Fatalf("DecodeV2 failed (%v) but left %d series", err, len(r.Series))
			}
			return
		}
		var v2 writev2.Request
		if gogoErr := v2.Unmarshal(body); gogoErr != nil {
			t.Fatalf("DecodeV2 accepts a body writev2 rejects (%v)", gogoErr)
		}
		want, convErr := fromWritev2(&v2)
		if convErr != nil {
			t.Fatalf("DecodeV2 accepts a body with bad references (%v)", convErr)
		}
		if d := diffRequestV2(r, want); d != "" {
			t.Fatalf("DecodeV2 and writev2 disagree: %s", d)
		}
	})
}

func fuzzSeedsV2() map[string][]byte {
	seeds := map[string][]byte{
		"empty":           nil,
		"node-exporter":   mustMarshalV2(toV2(nodeExporterRequest(20), noStart)),
		"rich":            mustMarshalV2(toV2(richRequest(), someStarts)),
		"truncated":       mustMarshalV2(toV2(nodeExporterRequest(2), noStart))[:150],
		"bad-ref":         cat(str(4, ""), str(4, "a"), msg(5, packedUint(1, 1, 5))),
		"odd-refs":        cat(str(4, ""), str(4, "a"), msg(5, packedUint(1, 1))),
		"v1-body":         mustMarshal(richRequest()),
		"ragged-counts":   cat(str(4, ""), msg(5, msg(3, msg(13, make([]byte, 12))))),
		"huge-symbol-len": cat([]byte{0x22, 0xff, 0xff, 0xff, 0xff, 0x0f}),
	}
	for _, v := range v2Variants {
		seeds["variant-"+strings.ReplaceAll(v.name, " ", "-")] = v.body
	}
	return seeds
}

// TestFuzzCorpusV2 checks that testdata/fuzz/FuzzDecodeV2 holds the seeds
// of fuzzSeedsV2, and rewrites them with -update.
func TestFuzzCorpusV2(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeV2")
	for name, body := range fuzzSeedsV2() {
		path := filepath.Join(dir, "seed-"+name)
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", body))
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s is missing or stale (%v): run go test ./remotewrite -run TestFuzzCorpusV2 -update", path, err)
		}
	}
}

// BenchmarkDecodeV2 decodes the standard request sent as remote-write 2.0,
// beside BenchmarkDecode (the same request as 1.0): compare ns/series.
func BenchmarkDecodeV2(b *testing.B) {
	body := mustMarshalV2(toV2(nodeExporterRequest(standardSeries), noStart))
	r := NewRequest()
	if err := DecodeV2(body, r); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		if err := DecodeV2(body, r); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}

// BenchmarkDecodeV2Writev2 is the baseline: gogo's generated Unmarshal
// plus the label building Prometheus' own receiver does per series.
func BenchmarkDecodeV2Writev2(b *testing.B) {
	body := mustMarshalV2(toV2(nodeExporterRequest(standardSeries), noStart))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	sb := labels.NewScratchBuilder(16)
	n, start := 0, time.Now()
	for b.Loop() {
		var v2 writev2.Request
		if err := v2.Unmarshal(body); err != nil {
			b.Fatal(err)
		}
		for i := range v2.Timeseries {
			if _, err := v2.Timeseries[i].ToLabels(&sb, v2.Symbols); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}

// BenchmarkReceive is what the distributor does with a body before
// validation, per protocol: snappy-decompress the standard request into a
// reused buffer, then decode it into a reused Request. A 2.0 body is a
// fifth of a 1.0 body (labels are references), so it decompresses faster
// than its decoding costs more; this is the figure to compare.
//
// go test ./remotewrite -run '^$' -bench Receive -count 8
func BenchmarkReceive(b *testing.B) {
	wr := nodeExporterRequest(standardSeries)
	for _, bc := range []struct {
		name   string
		body   []byte
		decode func([]byte, *Request) error
	}{
		{"rw1", mustMarshal(wr), Decode},
		{"rw2", mustMarshalV2(toV2(wr, noStart)), DecodeV2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			compressed := gsnappy.Encode(nil, bc.body)
			raw := make([]byte, len(bc.body))
			r := NewRequest()
			b.SetBytes(int64(len(compressed)))
			b.ReportAllocs()
			n, start := 0, time.Now()
			for b.Loop() {
				out, err := gsnappy.Decode(raw, compressed)
				if err != nil {
					b.Fatal(err)
				}
				if err := bc.decode(out, r); err != nil {
					b.Fatal(err)
				}
				n++
			}
			perSeries(b, start, n, standardSeries)
		})
	}
}
