package storequery

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/ring"
)

// fakeGateway answers LabelNames with its own name per block, or fails,
// as a whole or for the blocks in blockErrs (gRPC code by block id).
type fakeGateway struct {
	storepb.StoreGatewayClient
	name      string
	err       error
	blockErrs map[string]codes.Code

	mu     sync.Mutex
	calls  int
	blocks []string // every block asked
}

func (f *fakeGateway) LabelNames(_ context.Context, req *storepb.LabelNamesRequest, _ ...grpc.CallOption) (*storepb.LabelNamesResponse, error) {
	f.mu.Lock()
	f.calls++
	f.blocks = append(f.blocks, req.BlockIds...)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	resp := &storepb.LabelNamesResponse{Names: []string{f.name}}
	for _, id := range req.BlockIds {
		if code, ok := f.blockErrs[id]; ok {
			resp.BlockErrors = append(resp.BlockErrors, &storepb.BlockError{BlockId: id, Code: uint32(code), Message: "reading block " + id + ": " + code.String()})
			continue
		}
		resp.QueriedBlocks = append(resp.QueriedBlocks, id)
	}
	return resp, nil
}

// staticRing is a ring that never changes.
type staticRing []ring.Instance

func (r staticRing) Index() *ring.Index { return ring.NewIndex(r) }

type fakeClients map[string]*fakeGateway

func (f fakeClients) Get(addr string) (storepb.StoreGatewayClient, error) {
	if g, ok := f[addr]; ok {
		return g, nil
	}
	return nil, errors.New("no such store-gateway")
}

func TestFetchRetriesAndBadInput(t *testing.T) {
	r := staticRing{
		{ID: "a", Addr: "a:1", State: ring.Active, Tokens: []uint32{1 << 30, 3 << 30}},
		{ID: "b", Addr: "b:1", State: ring.Active, Tokens: []uint32{2 << 30, 4<<30 - 1}},
	}
	blocks := []bucketindex.BlockRef{{ID: ulid.MustNew(1, nil), MaxTime: 10}, {ID: ulid.MustNew(2, nil), MaxTime: 10}, {ID: ulid.MustNew(3, nil), MaxTime: 10}}
	lister := bucketindex.BlockListerFunc(func(context.Context, string, int64, int64) ([]bucketindex.BlockRef, error) { return blocks, nil })
	for _, tc := range []struct {
		name       string
		errA, errB error
		want       []string
		wantErr    string
		wantCalls  int // of a: a round each
	}{
		{"both fine", nil, nil, []string{"a", "b"}, "", 1},
		{"a down: b serves all", status.Error(codes.Unavailable, "down"), nil, []string{"b"}, "", 1},
		{"bad input is not retried", status.Error(codes.InvalidArgument, "bad matcher"), nil, nil, "bad matcher", 1},
		{"both down", status.Error(codes.Unavailable, "down a"), status.Error(codes.Unavailable, "down b"), nil, "not served", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clients := fakeClients{"a:1": {name: "a", err: tc.errA}, "b:1": {name: "b", err: tc.errB}}
			c := New(Deps{Blocks: lister, Sharder: ring.NewBlockSharder(r, ring.Config{ReplicationFactor: 2}, nowFunc), Clients: clients, Reg: prometheus.NewRegistry()})
			got, err := c.LabelNames(context.Background(), "t1", 0, 10, nil, 0)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
				require.Subset(t, tc.want, got)
				require.NotEmpty(t, got)
			}
			require.Equal(t, tc.wantCalls, clients["a:1"].calls, "one request per store-gateway and round")
		})
	}
}
