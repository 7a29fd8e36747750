package server

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(t *testing.T) Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.HTTPListenAddress, cfg.GRPCListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	require.NoError(t, cfg.Validate())
	return cfg
}

func TestServeReadyMetricsAndDrain(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(testConfig(t), slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	release := make(chan struct{})
	started := make(chan struct{})
	s.Handle("/slow", "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.WriteHeader(http.StatusTeapot)
	}))
	var ready atomic.Bool
	s.AddReadyCheck("ingester", func(context.Context) error {
		if !ready.Load() {
			return errors.New("replaying WAL")
		}
		return nil
	})

	httpL, grpcL, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, httpL, grpcL) }()
	base := "http://" + httpL.Addr().String()

	resp, err := http.Get(base + "/ready")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Contains(t, string(body), "ingester: replaying WAL")

	ready.Store(true)
	resp, err = http.Get(base + "/ready")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// An in-flight request finishes during shutdown.
	slow := make(chan int)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	<-started
	cancel()
	// Shutdown has begun; let the handler finish.
	close(release)
	require.Equal(t, http.StatusTeapot, <-slow)
	require.NoError(t, <-done)

	n, err := testutil.GatherAndCount(reg, "strata_request_duration_seconds")
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 2)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP strata_inflight_requests Requests being served, by route.
# TYPE strata_inflight_requests gauge
strata_inflight_requests{protocol="http",route="metrics"} 0
strata_inflight_requests{protocol="http",route="ready"} 0
strata_inflight_requests{protocol="http",route="slow"} 0
`), "strata_inflight_requests"))
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad http address", func(c *Config) { c.HTTPListenAddress = "9009" }, "-server.http-listen-address"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "-log.level"},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, "-log.format"},
		{"tls cert without key", func(c *Config) { c.HTTPTLS.CertPath = "a.crt" }, "-server.http-tls-cert-path and -server.http-tls-key-path must be set together"},
		{"tls key without cert", func(c *Config) { c.GRPCTLS.KeyPath = "a.key" }, "-server.grpc-tls-cert-path and -server.grpc-tls-key-path must be set together"},
		{"client ca without cert", func(c *Config) { c.GRPCTLS.ClientCAPath = "ca.crt" }, "-server.grpc-tls-client-ca-path needs"},
		{"tls", func(c *Config) { c.GRPCTLS = TLSConfig{CertPath: "a", KeyPath: "b", ClientCAPath: "c"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
