package clientpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"

	"github.com/strata-metrics/strata/auth"
)

// tlsCreds is gRPC TLS whose configuration is built per handshake from
// reloaded files: credentials.NewTLS alone fixes the CA pool at creation.
type tlsCreds struct {
	c auth.ClientTLS
}

func newTLSCreds(cfg Config, reg prometheus.Registerer) *tlsCreds {
	// The pool has no logger; reload failures surface as dial errors.
	log := slog.New(slog.DiscardHandler)
	t := &tlsCreds{c: auth.ClientTLS{ServerName: cfg.TLSServerName, InsecureSkipVerify: cfg.TLSInsecureSkipVerify}}
	if cfg.TLSCertPath != "" {
		t.c.KeyPair = auth.NewKeyPair("-ingester.client.tls-cert-path", cfg.TLSCertPath, cfg.TLSKeyPath, log, reg)
	}
	if cfg.TLSCAPath != "" {
		t.c.CA = auth.NewCAPool("-ingester.client.tls-ca-path", cfg.TLSCAPath, log, reg)
	}
	return t
}

func (t *tlsCreds) current() (credentials.TransportCredentials, error) {
	cfg, err := t.c.Config()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

func (t *tlsCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := t.current()
	if err != nil {
		return nil, nil, fmt.Errorf("ingester client tls: %w", err)
	}
	tc, info, err := c.ClientHandshake(ctx, authority, conn)
	if err != nil {
		return nil, nil, err
	}
	return &alertConn{Conn: tc}, info, nil
}

// alertConn recovers the reason a server refused our certificate. Under TLS
// 1.3 the client's handshake completes before the server checks the client
// certificate; the server then sends an alert and closes, and gRPC's first
// write fails with a bare "broken pipe" that says nothing about TLS. The
// alert is already waiting on the connection: on such a write error, read
// it (briefly) and report it.
type alertConn struct{ net.Conn }

func (c *alertConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		_ = c.Conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var oe *net.OpError
		if _, rerr := c.Conn.Read(make([]byte, 1)); errors.As(rerr, &oe) && oe.Op == "remote error" {
			return n, fmt.Errorf("ingester refused the TLS connection: %w (then %v)", rerr, err)
		}
	}
	return n, err
}

func (t *tlsCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("BUG: ingester client credentials used by a server")
}

func (t *tlsCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2", ServerName: t.c.ServerName}
}

func (t *tlsCreds) Clone() credentials.TransportCredentials {
	c := *t
	return &c
}

// OverrideServerName implements the deprecated part of the interface.
func (t *tlsCreds) OverrideServerName(name string) error {
	t.c.ServerName = name
	return nil
}
