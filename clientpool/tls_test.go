package clientpool

import (
	"context"
	"flag"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/strata-metrics/strata/auth/authtest"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/server"
)

// startTLSServer runs a server.Server with gRPC mutual TLS on loopback and
// the tiny ingester of pool_test.go; it returns the gRPC address.
func startTLSServer(t *testing.T, files authtest.Files) string {
	t.Helper()
	var cfg server.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.HTTPListenAddress, cfg.GRPCListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.GRPCTLS = server.TLSConfig{CertPath: files.Cert, KeyPath: files.Key, ClientCAPath: files.CA}
	require.NoError(t, cfg.Validate())
	s := server.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
	ingesterpb.RegisterIngesterServer(s.GRPC(), labelServer{name: "tls"})
	httpL, grpcL, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, httpL, grpcL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return grpcL.Addr().String()
}

// call makes one RPC on a fresh connection and returns the serial number
// of the server's certificate.
func call(t *testing.T, p *Pool, addr string) (int64, error) {
	t.Helper()
	p.Prune(func(string) bool { return false }) // a new handshake, not a pooled connection
	c, err := p.Get(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pr peer.Peer
	if _, err := c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{}, grpc.Peer(&pr)); err != nil {
		return 0, err
	}
	return pr.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.Int64(), nil
}

func tlsPool(t *testing.T, mod func(*Config)) *Pool {
	t.Helper()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.TLSEnabled = true
	mod(&cfg)
	require.NoError(t, cfg.Validate())
	p := New(cfg, prometheus.NewRegistry())
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := authtest.NewCA(t, "ca"), authtest.NewCA(t, "other")
	sc, sk := ca.Issue(t, "ingester", 1)
	srv := authtest.WriteFiles(t, dir, "server", sc, sk, ca)
	addr := startTLSServer(t, srv)

	cc, ck := ca.Issue(t, "distributor", 100)
	cli := authtest.WriteFiles(t, dir, "client", cc, ck, ca)
	oc, ok := other.Issue(t, "intruder", 200)
	intruder := authtest.WriteFiles(t, dir, "intruder", oc, ok, ca)

	good := tlsPool(t, func(c *Config) { c.TLSCertPath, c.TLSKeyPath, c.TLSCAPath = cli.Cert, cli.Key, cli.CA })
	serial, err := call(t, good, addr)
	require.NoError(t, err, "right client certificate")
	require.Equal(t, int64(1), serial)

	for _, tc := range []struct {
		name string
		pool *Pool
	}{
		{"no client certificate", tlsPool(t, func(c *Config) { c.TLSCAPath = cli.CA })},
		{"client certificate of another CA", tlsPool(t, func(c *Config) {
			c.TLSCertPath, c.TLSKeyPath, c.TLSCAPath = intruder.Cert, intruder.Key, intruder.CA
		})},
		{"no client certificate, server not verified", tlsPool(t, func(c *Config) { c.TLSInsecureSkipVerify = true })},
		{"plain text", New(Config{MaxMessageBytes: 1 << 20, KeepaliveTime: time.Minute}, prometheus.NewRegistry())},
		{"server certificate not trusted", tlsPool(t, func(c *Config) {
			c.TLSCertPath, c.TLSKeyPath, c.TLSCAPath = cli.Cert, cli.Key, writeCA(t, dir, "other-only", other)
		})},
		{"server name mismatch", tlsPool(t, func(c *Config) {
			c.TLSCertPath, c.TLSKeyPath, c.TLSCAPath, c.TLSServerName = cli.Cert, cli.Key, cli.CA, "elsewhere.example"
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.pool.Close()
			_, err := call(t, tc.pool, addr)
			require.Error(t, err)
		})
	}

	t.Run("server certificate rotated", func(t *testing.T) {
		sc2, sk2 := ca.Issue(t, "ingester", 2)
		authtest.WriteFiles(t, dir, "server", sc2, sk2, ca)
		serial, err := call(t, good, addr)
		require.NoError(t, err)
		require.Equal(t, int64(2), serial)
	})

	t.Run("CAs rotated on both sides", func(t *testing.T) {
		// The server moves to a certificate of the other CA: the client
		// refuses it until its CA file trusts that CA too.
		sc3, sk3 := other.Issue(t, "ingester", 3)
		authtest.WriteFile(t, srv.Cert, sc3)
		authtest.WriteFile(t, srv.Key, sk3)
		_, err := call(t, good, addr)
		require.Error(t, err)
		authtest.WriteFile(t, cli.CA, authtest.Bundle(ca, other))
		serial, err := call(t, good, addr)
		require.NoError(t, err)
		require.Equal(t, int64(3), serial)

		// The intruder's certificate is accepted once the server's client
		// CA file lists the other CA.
		p := tlsPool(t, func(c *Config) { c.TLSCertPath, c.TLSKeyPath, c.TLSCAPath = intruder.Cert, intruder.Key, cli.CA })
		_, err = call(t, p, addr)
		require.Error(t, err)
		authtest.WriteFile(t, srv.CA, authtest.Bundle(ca, other))
		_, err = call(t, p, addr)
		require.NoError(t, err)
	})
}

func writeCA(t *testing.T, dir, name string, cas ...*authtest.CA) string {
	t.Helper()
	path := filepath.Join(dir, name+"-ca.crt")
	authtest.WriteFile(t, path, authtest.Bundle(cas...))
	return path
}

func TestValidateTLS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"tls", func(c *Config) { c.TLSEnabled, c.TLSCAPath = true, "ca.crt" }, ""},
		{"cert without key", func(c *Config) { c.TLSEnabled, c.TLSCertPath = true, "a.crt" }, "must be set together"},
		{"files without tls", func(c *Config) { c.TLSCAPath = "ca.crt" }, "-ingester.client.tls-enabled is false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
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
