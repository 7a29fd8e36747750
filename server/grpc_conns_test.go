package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveGRPC runs a Server with cfg until the test ends and returns its
// gRPC address and registry.
func serveGRPC(t *testing.T, cfg Config) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	healthpb.RegisterHealthServer(s.GRPC(), health.NewServer())
	httpL, grpcL, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, httpL, grpcL) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return grpcL.Addr().String(), reg
}

// closedWithin reports whether the server closes c within d (a read
// returns an error, io.EOF included) rather than holding it open.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !errors.As(err, &ne) || !ne.Timeout()
		}
	}
}

// TestGRPCConnectionsBounded: a connection that never finishes the HTTP/2
// handshake is closed after -server.grpc-connection-timeout; beyond
// -server.grpc-max-connections new connections are closed at accept and
// counted; a real client still gets through once the flood is gone.
func TestGRPCConnectionsBounded(t *testing.T) {
	cfg := testConfig(t)
	cfg.GRPCMaxConnections = 3
	cfg.GRPCConnectionTimeout = 300 * time.Millisecond
	addr, reg := serveGRPC(t, cfg)

	// Preface-only connections: the server sends its settings, then
	// closes them at the handshake deadline.
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		held = append(held, c)
	}
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "strata_server_grpc_connections") == 3
	}, 5*time.Second, 5*time.Millisecond)
	over, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.True(t, closedWithin(over, 5*time.Second), "a connection over the limit was kept")
	over.Close()
	require.Equal(t, 1.0, metricValue(t, reg, "strata_server_grpc_connections_refused_total"))

	for _, c := range held {
		require.True(t, closedWithin(c, 5*time.Second), "a connection that never handshook was kept")
		c.Close()
	}
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "strata_server_grpc_connections") == 0
	}, 5*time.Second, 5*time.Millisecond)

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

// TestGRPCIdleConnectionClosed: a client that stops calling is
// disconnected after -server.grpc-max-connection-idle.
func TestGRPCIdleConnectionClosed(t *testing.T) {
	cfg := testConfig(t)
	cfg.GRPCMaxConnectionIdle = 200 * time.Millisecond
	addr, reg := serveGRPC(t, cfg)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, 1.0, metricValue(t, reg, "strata_server_grpc_connections"))
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "strata_server_grpc_connections") == 0
	}, 5*time.Second, 10*time.Millisecond, "idle connection closed")
}

// metricValue is the value of the one gauge or counter named name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
