package compactor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
)

// BenchmarkVerticalCompaction merges three replicas' copies of a 2h block
// (n series × 480 samples each), the compactor's most frequent job. With
// identical copies, duplicate chunks are dropped without decoding; with
// differing copies (one replica holds extra out-of-order samples in the
// last half hour) the overlapping chunks are decoded, merged and encoded.
//
//	go test ./compactor -run '^$' -bench VerticalCompaction -benchtime 5x
func BenchmarkVerticalCompaction(b *testing.B) {
	for _, tc := range []struct {
		n    int
		tail bool
	}{{100, false}, {1000, false}, {1000, true}} {
		b.Run(fmt.Sprintf("series=%d/ooo-tail=%t", tc.n, tc.tail), func(b *testing.B) {
			n := tc.n
			d0 := day0()
			d := genData(n, d0, d0+2*hourMs)
			c := &Compactor{planner: planner{ranges: []int64{2 * hourMs}}, tsdbMetrics: tsdb.NewCompactorMetrics(nil)}
			var ins []*input
			var inBytes int64
			for i := range 3 {
				rd := d
				if tc.tail && i == 1 {
					rd = union(d, oooTail(d, d0+90*60*1000))
				}
				dir := makeBlock(b, b.TempDir(), rd)
				pb, err := tsdb.OpenBlock(nil, dir, nil, nil)
				require.NoError(b, err)
				defer pb.Close()
				ins = append(ins, &input{dir: dir, block: pb})
				inBytes += dirSize(b, dir)
			}
			out := b.TempDir()
			var outBytes int64
			b.ReportAllocs()
			for b.Loop() {
				ids, err := c.merge(context.Background(), out, ins)
				require.NoError(b, err)
				outBytes = dirSize(b, filepath.Join(out, ids[0].String()))
				require.NoError(b, os.RemoveAll(filepath.Join(out, ids[0].String())))
			}
			samples := float64(3 * n * len(d[firstKey(d)]))
			b.ReportMetric(float64(inBytes), "in-bytes")
			b.ReportMetric(float64(outBytes), "out-bytes")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/samples, "ns/input-sample")
		})
	}
}

func firstKey(d data) string {
	for k := range d {
		return k
	}
	return ""
}

// dirSize is the bytes of a block's files (meta.json excluded).
func dirSize(b *testing.B, dir string) int64 {
	var n int64
	require.NoError(b, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Base(p) != "meta.json" {
			n += info.Size()
		}
		return err
	}))
	return n
}
