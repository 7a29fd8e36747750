package clientpool

import (
	"context"
	"flag"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type labelServer struct {
	ingesterpb.UnimplementedIngesterServer
	name string
}

func (s labelServer) LabelNames(context.Context, *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	return &ingesterpb.LabelNamesResponse{Names: []string{s.name}}, nil
}

func serve(t *testing.T, name string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(s, labelServer{name: name})
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func TestPool(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	require.NoError(t, cfg.Validate())
	reg := prometheus.NewRegistry()
	p := New(cfg, reg)
	defer p.Close()

	a, b := serve(t, "a"), serve(t, "b")
	for _, tc := range []struct{ addr, want string }{{a, "a"}, {b, "b"}, {a, "a"}} {
		c, err := p.Get(tc.addr)
		require.NoError(t, err)
		resp, err := c.LabelNames(context.Background(), &ingesterpb.LabelNamesRequest{})
		require.NoError(t, err)
		require.Equal(t, []string{tc.want}, resp.Names)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(p.open), "one connection per address")

	p.Prune(func(addr string) bool { return addr == b })
	require.Equal(t, 1.0, testutil.ToFloat64(p.open))
	c, err := p.Get(a) // dialled again on demand
	require.NoError(t, err)
	_, err = c.LabelNames(context.Background(), &ingesterpb.LabelNamesRequest{})
	require.NoError(t, err)
}

func TestValidate(t *testing.T) {
	cfg := Config{MaxMessageBytes: 1}
	require.ErrorContains(t, cfg.Validate(), "-ingester.client.max-message-bytes must be at least 1 MiB")
}
