package distributor

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// grpcIngester is a tiny ingester over real gRPC: it records what it is
// pushed and rejects some tenants with a classified error.
type grpcIngester struct {
	ingesterpb.UnimplementedIngesterServer

	mu       sync.Mutex
	received map[string][]prompb.TimeSeries // by tenant
}

func (g *grpcIngester) Push(_ context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	var class ingesterpb.ErrorClass
	switch req.Tenant {
	case "bad":
		class = ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT
	case "limited":
		class = ingesterpb.ErrorClass_ERROR_CLASS_LIMITED
	}
	if class != ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED {
		st, err := status.New(codes.FailedPrecondition, "rejected for tenant "+req.Tenant).WithDetails(&ingesterpb.ErrorDetails{Class: class, RejectedSamples: 1})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(req.WriteRequest); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.received[req.Tenant] = append(g.received[req.Tenant], wr.Timeseries...)
	return &ingesterpb.PushResponse{SamplesAppended: int64(len(wr.Timeseries))}, nil
}

// TestPushOverGRPC runs the distributor against a gRPC ingester on
// loopback, through the real client pool and ring.
func TestPushOverGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ing := &grpcIngester{received: map[string][]prompb.TimeSeries{}}
	srv := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(srv, ing)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Stop()
			require.NoError(t, <-served)
		}
	}
	t.Cleanup(stop)

	store := ring.NewMemStore()
	require.NoError(t, store.Update(context.Background(), func(d *ring.Desc) bool {
		d.Instances["ing-0"] = ring.Instance{ID: "ing-0", Addr: lis.Addr().String(), State: ring.Active, Tokens: []uint32{1 << 31}, Heartbeat: testNowMs}
		return true
	}))
	rng := ring.New(ring.Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, store, func() time.Time { return testNow })
	pool := clientpool.New(clientpool.Config{MaxMessageBytes: 100 << 20, KeepaliveTime: 20 * time.Second}, prometheus.NewRegistry())
	t.Cleanup(func() { require.NoError(t, pool.Close()) })

	d, err := New(defaultConfig(), Deps{
		Ring: rng, Clients: pool, Limits: limits.NewOverrides(defaultLimits()),
		Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Log:     slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(),
		Now: func() time.Time { return testNow },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-ran) })

	push := func(tenantID string, in []prompb.TimeSeries) (int, string) {
		h := &harness{d: d}
		req := newPushRequest(encode(t, &prompb.WriteRequest{Timeseries: in}))
		req.Header.Set("X-Scope-OrgID", tenantID)
		return h.do(t, req)
	}

	in := nodeSeries(200)
	code, msg := push("team-a", in)
	require.Equal(t, 204, code, msg)
	ing.mu.Lock()
	requireSameSeries(t, in, ing.received["team-a"])
	ing.mu.Unlock()

	code, msg = push("bad", in[:1])
	require.Equal(t, 400, code)
	require.Equal(t, "ingester ing-0 rejected some of the data, the rest was stored: rejected for tenant bad [strata-ingester-rejected]", msg)

	code, msg = push("limited", in[:1])
	require.Equal(t, 429, code)
	require.Contains(t, msg, "limited: rejected for tenant limited")

	stop()
	code, msg = push("team-a", in[:1])
	require.Equal(t, 500, code)
	require.Contains(t, msg, "ingester ing-0 ("+lis.Addr().String()+"): unavailable: ")
}
