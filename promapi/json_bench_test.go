package promapi

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// BenchmarkEncodeJSON encodes the answers the API writes most: a range
// query's matrix (1,000 series × 240 points), an instant vector of 10,000
// samples and 10,000 label sets of /series.
//
// go test ./promapi -run '^$' -bench EncodeJSON -count 6 > new.txt; benchstat old.txt new.txt
func BenchmarkEncodeJSON(b *testing.B) {
	matrix := make(promql.Matrix, 1000)
	vector := make(promql.Vector, 10_000)
	sets := make([]labels.Labels, 10_000)
	for i := range matrix {
		ls := labels.FromStrings("__name__", "x", "job", fmt.Sprint(i%10), "instance", fmt.Sprintf("host-%04d:9100", i))
		matrix[i].Metric = ls
		for k := range 240 {
			matrix[i].Floats = append(matrix[i].Floats, promql.FPoint{T: 1_700_000_000_000 + int64(k)*15000, F: float64(i*k) + 0.25})
		}
	}
	for i := range vector {
		ls := labels.FromStrings("__name__", "x", "job", fmt.Sprint(i%10), "instance", fmt.Sprintf("host-%05d:9100", i))
		vector[i] = promql.Sample{Metric: ls, T: 1_700_000_000_000, F: float64(i) / 3}
		sets[i] = ls
	}
	for _, bc := range []struct {
		name string
		data any
	}{
		{"matrix", &QueryData{ResultType: parser.ValueTypeMatrix, Result: matrix}},
		{"vector", &QueryData{ResultType: parser.ValueTypeVector, Result: vector}},
		{"series", sets},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n int
			b.ReportAllocs()
			for b.Loop() {
				if err := EncodeSuccess(bc.data, nil, nil, func(p []byte) { n = len(p) }); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(n))
		})
	}
}
