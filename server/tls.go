package server

import (
	"crypto/tls"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-metrics/strata/auth"
)

// listenerTLS is one listener's reloaded certificate files.
type listenerTLS struct {
	kp  *auth.KeyPair
	cas *auth.CAPool // nil: no client certificates asked for
	cfg *tls.Config
}

// newListenerTLS returns nil when c is off; nothing is read until load.
func newListenerTLS(c TLSConfig, proto string, nextProtos []string, log *slog.Logger, reg prometheus.Registerer) *listenerTLS {
	if !c.Enabled() {
		return nil
	}
	l := &listenerTLS{kp: auth.NewKeyPair("-server."+proto+"-tls-cert-path", c.CertPath, c.KeyPath, log, reg)}
	if c.ClientCAPath != "" {
		l.cas = auth.NewCAPool("-server."+proto+"-tls-client-ca-path", c.ClientCAPath, log, reg)
	}
	l.cfg = auth.ServerTLS(l.kp, l.cas, nextProtos)
	return l
}

// load reads the files once so that a bad path fails the start.
func (l *listenerTLS) load() error {
	if l == nil {
		return nil
	}
	if err := l.kp.Load(); err != nil {
		return err
	}
	if l.cas != nil {
		return l.cas.Load()
	}
	return nil
}
