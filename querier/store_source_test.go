package querier

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// xorChunk encodes samples at ts (value = t) into one XOR chunk.
func xorChunk(t *testing.T, replica int32, ts ...int64) chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	for _, x := range ts {
		app.Append(0, x, float64(x))
	}
	return chunk{mint: ts[0], maxt: ts[len(ts)-1], data: c.Bytes(), enc: chunkenc.EncXOR, replica: replica}
}

// A block's chunk and an ingester's chunk of the same series, cut at other
// points so that they overlap without being identical, merge into one
// sample per timestamp.
func TestMergeReplicasStoreAndIngester(t *testing.T) {
	ls := labels.FromStrings("__name__", "m")
	ing := &fetchedSeries{lset: ls, mint: 0, maxt: 100, chunks: []chunk{xorChunk(t, 0, 40, 50, 60, 70), xorChunk(t, 0, 80, 90)}}
	blk := &fetchedSeries{lset: ls, mint: 0, maxt: 100, chunks: []chunk{xorChunk(t, storeReplica, 0, 10, 20, 30, 40, 50, 60)}}
	merged := mergeReplicas(ing, blk)
	it := merged.Iterator(nil)
	var got []int64
	for it.Next() != chunkenc.ValNone {
		ts, v := it.At()
		require.Equal(t, float64(ts), v)
		got = append(got, ts)
	}
	require.NoError(t, it.Err())
	require.Equal(t, []int64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}, got)
}
