package distributor

import (
	"context"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/strata-metrics/strata/remotewrite"
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

// startOverGRPC starts a distributor whose one ingester is ing, served over
// gRPC on loopback through the real client pool and ring; stop stops the
// ingester's server (the distributor is stopped by the test's cleanup).
func startOverGRPC(t *testing.T) (d *Distributor, ing *grpcIngester, addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ing = &grpcIngester{received: map[string][]prompb.TimeSeries{}}
	srv := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(srv, ing)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	stopped := false
	stop = func() {
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

	d, err = New(defaultConfig(), Deps{
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
	return d, ing, lis.Addr().String(), stop
}

// TestPushOverGRPC runs the distributor against a gRPC ingester on
// loopback, through the real client pool and ring.
func TestPushOverGRPC(t *testing.T) {
	d, ing, addr, stop := startOverGRPC(t)

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
	require.Contains(t, msg, "ingester ing-0 ("+addr+"): unavailable: ")
}

// TestPushInProcess calls Push as the ruler does, with a request built by
// hand (no encoding), reads the samples back from the ingester, and checks
// that each error class maps to the status the HTTP handler answers.
func TestPushInProcess(t *testing.T) {
	d, ing, _, stop := startOverGRPC(t)
	ctx := context.Background()
	ts := testNowMs
	series := func() *remotewrite.Request {
		return &remotewrite.Request{Series: []remotewrite.Series{
			{ // unsorted, as a rule's result may come: Push sorts in place
				Labels:  []remotewrite.Label{{Name: "job", Value: "a"}, {Name: "__name__", Value: "job:up:sum"}},
				Samples: []remotewrite.Sample{{Value: 3, Timestamp: ts}},
			},
			{
				Labels:  []remotewrite.Label{{Name: "__name__", Value: "job:up:sum"}, {Name: "job", Value: "b"}},
				Samples: []remotewrite.Sample{{Value: 1, Timestamp: ts}, {Value: 2, Timestamp: ts + 1000}},
			},
		}}
	}

	res, err := d.Push(ctx, "team-a", series())
	require.NoError(t, err)
	require.Equal(t, PushResult{Series: 2, Samples: 3}, res)
	ing.mu.Lock()
	got := ing.received["team-a"]
	ing.mu.Unlock()
	requireSameSeries(t, []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "job:up:sum"}, {Name: "job", Value: "a"}}, Samples: []prompb.Sample{{Value: 3, Timestamp: ts}}},
		{Labels: []prompb.Label{{Name: "__name__", Value: "job:up:sum"}, {Name: "job", Value: "b"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: ts}, {Value: 2, Timestamp: ts + 1000}}},
	}, got)

	// Every class an in-process caller can get maps to what the HTTP
	// handler answers for it.
	invalid := series()
	invalid.Series[0].Labels[1].Name = "" // no metric name: dropped, the rest stored
	for _, tc := range []struct {
		name, tenant string
		req          *remotewrite.Request
		want         any // a pointer to the wanted class
		code         int
	}{
		{"bad input", "team-a", invalid, new(*BadInputError), http.StatusBadRequest},
		{"ingester rejects", "bad", series(), new(*BadInputError), http.StatusBadRequest},
		{"ingester limited", "limited", series(), new(*LimitedError), http.StatusTooManyRequests},
		{"invalid tenant", "../etc", series(), new(*tenant.InvalidError), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Push(ctx, tc.tenant, tc.req)
			require.ErrorAs(t, err, tc.want)
			require.Equal(t, tc.code, httpStatus(err))
		})
	}

	stop()
	_, err = d.Push(ctx, "team-a", series())
	require.ErrorAs(t, err, new(*IngesterError))
	require.Equal(t, http.StatusInternalServerError, httpStatus(err))
}
