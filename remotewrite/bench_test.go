package remotewrite

import (
	"testing"
	"time"

	gsnappy "github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
	ksnappy "github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The standard request: 2,000 series × 10 node_exporter-like labels × 1 sample.
const standardSeries = 2000

// perSeries reports the time per series of a benchmark that handled
// series series in each of its n iterations.
func perSeries(b *testing.B, start time.Time, n, series int) {
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n*series), "ns/series")
}

// go test ./remotewrite -run '^$' -bench . -count 8 > new.txt; benchstat old.txt new.txt
func BenchmarkDecode(b *testing.B) {
	body := mustMarshal(nodeExporterRequest(standardSeries))
	r := NewRequest()
	if err := Decode(body, r); err != nil { // grow r's arrays once, before timing
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		if err := Decode(body, r); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}

// BenchmarkDecodePrompb is the baseline: the generated gogo Unmarshal
// Prometheus' own receiver uses, into a fresh request as it does.
func BenchmarkDecodePrompb(b *testing.B) {
	body := mustMarshal(nodeExporterRequest(standardSeries))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(body); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}

// BenchmarkDecodeHistograms decodes series that carry native histograms
// and exemplars: 100 copies of richRequest's series.
func BenchmarkDecodeHistograms(b *testing.B) {
	wr := &prompb.WriteRequest{}
	for range 100 {
		wr.Timeseries = append(wr.Timeseries, richRequest().Timeseries...)
	}
	body := mustMarshal(wr)
	for _, bc := range []struct {
		name   string
		decode func() error
	}{
		{"strata", func() func() error {
			r := NewRequest()
			return func() error { return Decode(body, r) }
		}()},
		{"prompb", func() error {
			var wr prompb.WriteRequest
			return wr.Unmarshal(body)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			n, start := 0, time.Now()
			for b.Loop() {
				if err := bc.decode(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			perSeries(b, start, n, len(wr.Timeseries))
		})
	}
}

// BenchmarkSnappyDecode decompresses the standard request as Prometheus
// sends it (snappy block format) with each decoder at hand.
func BenchmarkSnappyDecode(b *testing.B) {
	body := mustMarshal(nodeExporterRequest(standardSeries))
	compressed := gsnappy.Encode(nil, body)
	for _, bc := range []struct {
		name   string
		decode func(dst, src []byte) ([]byte, error)
	}{
		{"golang-snappy", gsnappy.Decode},
		{"klauspost-snappy", ksnappy.Decode},
		{"klauspost-s2", s2.Decode},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dst := make([]byte, len(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			n, start := 0, time.Now()
			for b.Loop() {
				out, err := bc.decode(dst, compressed)
				if err != nil || len(out) != len(body) {
					b.Fatalf("decoded %d bytes, want %d: %v", len(out), len(body), err)
				}
				n++
			}
			perSeries(b, start, n, standardSeries)
		})
	}
}

// BenchmarkAppendSeries encodes the standard request into a reused buffer,
// as the distributor does per ingester.
func BenchmarkAppendSeries(b *testing.B) {
	r := NewRequest()
	if err := Decode(mustMarshal(nodeExporterRequest(standardSeries)), r); err != nil {
		b.Fatal(err)
	}
	buf := encodeRequest(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		buf = buf[:0]
		for i := range r.Series {
			buf = AppendSeries(buf, &r.Series[i])
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}

// BenchmarkMarshalPrompb is the encoding baseline: gogo's Marshal of the
// same request.
func BenchmarkMarshalPrompb(b *testing.B) {
	wr := nodeExporterRequest(standardSeries)
	buf := mustMarshal(wr)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	n, start := 0, time.Now()
	for b.Loop() {
		if _, err := wr.MarshalToSizedBuffer(buf[:wr.Size()]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perSeries(b, start, n, standardSeries)
}
