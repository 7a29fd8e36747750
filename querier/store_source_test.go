package querier

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/ring"
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

// fakeStoreGateway answers Series with the series of every block asked,
// one message per block, each block's series in order.
type fakeStoreGateway struct {
	storepb.StoreGatewayClient
	blocks map[string][]*ingesterpb.StreamSeries
}

func (f fakeStoreGateway) Series(_ context.Context, req *storepb.SeriesRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[storepb.SeriesResponse], error) {
	s := &fakeSeriesStream{}
	for _, id := range req.GetBlockIds() {
		s.msgs = append(s.msgs, &storepb.SeriesResponse{Series: f.blocks[id]})
	}
	s.msgs = append(s.msgs, &storepb.SeriesResponse{QueriedBlocks: req.GetBlockIds()})
	return s, nil
}

type fakeSeriesStream struct {
	grpc.ClientStream
	msgs []*storepb.SeriesResponse
}

func (s *fakeSeriesStream) Recv() (*storepb.SeriesResponse, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

type storeClientsFunc func(addr string) (storepb.StoreGatewayClient, error)

func (f storeClientsFunc) Get(addr string) (storepb.StoreGatewayClient, error) { return f(addr) }

type staticStoreRing []ring.Instance

func (r staticStoreRing) Index() *ring.Index { return ring.NewIndex(r) }

// The store-gateways' answers and the blocks within one answer go through
// the merge of the ingesters' answers: each series once, identical chunks
// once, others all, sorted by time.
func TestStoreSelectMergesAnswers(t *testing.T) {
	ch := func(mint, maxt int64, data string) *ingesterpb.Chunk {
		return &ingesterpb.Chunk{MinTimeMs: mint, MaxTimeMs: maxt, Encoding: uint32(chunkenc.EncXOR), Data: []byte(data)}
	}
	ss := func(v string, cs ...*ingesterpb.Chunk) *ingesterpb.StreamSeries {
		return &ingesterpb.StreamSeries{Labels: []*ingesterpb.Label{{Name: "l", Value: v}}, Chunks: cs}
	}
	b1, b2, b3 := ulid.MustNew(1, nil), ulid.MustNew(2, nil), ulid.MustNew(3, nil)
	blocks := map[string][]*ingesterpb.StreamSeries{
		b1.String(): {ss("a", ch(0, 10, "x"), ch(11, 20, "y")), ss("c", ch(0, 1, "c"))},
		b2.String(): {ss("a", ch(0, 10, "x"), ch(5, 15, "z")), ss("b", ch(0, 1, "b"))},
		b3.String(): {ss("a", ch(0, 10, "x"))}, // a third copy
	}
	r := staticStoreRing{
		{ID: "a", Addr: "a:1", State: ring.Active, Tokens: []uint32{1 << 30, 3 << 30}},
		{ID: "b", Addr: "b:1", State: ring.Active, Tokens: []uint32{2 << 30, 4<<30 - 1}},
	}
	refs := []bucketindex.BlockRef{{ID: b1, MaxTime: 30}, {ID: b2, MaxTime: 30}, {ID: b3, MaxTime: 30}}
	sg := storequery.New(storequery.Deps{
		Blocks:  bucketindex.BlockListerFunc(func(context.Context, string, int64, int64) ([]bucketindex.BlockRef, error) { return refs, nil }),
		Sharder: ring.NewBlockSharder(r, ring.Config{ReplicationFactor: 1}, time.Now),
		Clients: storeClientsFunc(func(string) (storepb.StoreGatewayClient, error) { return fakeStoreGateway{blocks: blocks}, nil }),
		Reg:     prometheus.NewRegistry(),
	})
	q, err := storeSource{sg}.querier("t1", 0, 30)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "l", ".+"))
	type got struct {
		lset   string
		chunks []string
	}
	var all []got
	for set.Next() {
		fs := set.At().(*fetchedSeries)
		g := got{lset: fs.lset.String()}
		for _, c := range fs.chunks {
			g.chunks = append(g.chunks, fmt.Sprintf("%d-%d:%s", c.mint, c.maxt, c.data))
		}
		all = append(all, g)
	}
	require.NoError(t, set.Err())
	require.Equal(t, []got{
		{`{l="a"}`, []string{"0-10:x", "5-15:z", "11-20:y"}},
		{`{l="b"}`, []string{"0-1:b"}},
		{`{l="c"}`, []string{"0-1:c"}},
	}, all)
}
