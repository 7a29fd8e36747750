package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/auth/authtest"
)

func serial(t *testing.T, kp *KeyPair) int64 {
	t.Helper()
	c, err := kp.Certificate()
	require.NoError(t, err)
	return c.Leaf.SerialNumber.Int64()
}

func TestKeyPairReload(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "ca")
	reg := prometheus.NewRegistry()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	kp := NewKeyPair("-test.cert", certPath, keyPath, slog.New(slog.DiscardHandler), reg)
	// Registering the same file twice (a server and a client) is fine.
	NewKeyPair("-test.cert", certPath, keyPath, slog.New(slog.DiscardHandler), reg)

	require.ErrorContains(t, kp.Load(), "load -test.cert")
	_, err := kp.Certificate()
	require.Error(t, err)

	c1, k1 := ca.Issue(t, "one", 1)
	authtest.WriteFiles(t, dir, "tls", c1, k1, ca)
	require.NoError(t, kp.Load())
	require.Equal(t, int64(1), serial(t, kp))
	leaf, _ := kp.Certificate()
	require.Equal(t, float64(leaf.Leaf.NotAfter.Unix()), expiryGauge(t, reg))

	c2, k2 := ca.Issue(t, "two", 2)
	authtest.WriteFiles(t, dir, "tls", c2, k2, ca)
	require.Equal(t, int64(2), serial(t, kp), "rotation picked up")

	// A broken certificate, then a certificate without its key yet: the
	// last good pair stays until the pair matches again.
	authtest.WriteFile(t, certPath, []byte("garbage"))
	require.Equal(t, int64(2), serial(t, kp))
	c3, k3 := ca.Issue(t, "three", 3)
	authtest.WriteFile(t, certPath, c3)
	require.Equal(t, int64(2), serial(t, kp))
	authtest.WriteFile(t, keyPath, k3)
	require.Equal(t, int64(3), serial(t, kp))
}

func expiryGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "strata_tls_certificate_expiry_seconds" {
			require.Len(t, mf.GetMetric(), 1, "one series per file")
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no strata_tls_certificate_expiry_seconds")
	return 0
}

func TestCAPool(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.crt")
	p := NewCAPool("-test.ca", path, slog.New(slog.DiscardHandler), nil)
	authtest.WriteFile(t, path, []byte("not pem"))
	require.ErrorContains(t, p.Load(), "load -test.ca: no PEM certificate found")
	a, b := authtest.NewCA(t, "a"), authtest.NewCA(t, "b")
	authtest.WriteFile(t, path, authtest.Bundle(a, b))
	require.NoError(t, p.Load())
	pool, err := p.Pool()
	require.NoError(t, err)
	cert, _ := b.Issue(t, "x", 9)
	leaf := parse(t, cert)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool})
	require.NoError(t, err)
}

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(certPEM)
	require.NotNil(t, blk)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

// TestServerAndClientTLS is one mutual-TLS handshake over loopback with
// configurations from ServerTLS and ClientTLS, then a rotated client CA
// file on the server side.
func TestServerAndClientTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := authtest.NewCA(t, "ca"), authtest.NewCA(t, "other")
	log := slog.New(slog.DiscardHandler)
	sc, sk := ca.Issue(t, "server", 1)
	srvFiles := authtest.WriteFiles(t, dir, "server", sc, sk, ca)
	cc, ck := other.Issue(t, "client", 2)
	cliFiles := authtest.WriteFiles(t, dir, "client", cc, ck, ca)

	srvCfg := ServerTLS(NewKeyPair("-s", srvFiles.Cert, srvFiles.Key, log, nil), NewCAPool("-sca", srvFiles.CA, log, nil), []string{"test"})
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	require.NoError(t, err)
	defer l.Close()
	served := make(chan error)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(served)
				return
			}
			err = c.(*tls.Conn).Handshake()
			c.Close() // the client's read returns
			served <- err
		}
	}()
	client := &ClientTLS{KeyPair: NewKeyPair("-c", cliFiles.Cert, cliFiles.Key, log, nil), CA: NewCAPool("-cca", cliFiles.CA, log, nil)}
	dial := func() error {
		cfg, err := client.Config()
		require.NoError(t, err)
		cfg.NextProtos = []string{"test"}
		c, err := tls.Dial("tcp", l.Addr().String(), cfg)
		if err != nil {
			<-served
			return err
		}
		defer c.Close()
		// TLS 1.3 reports a rejected client certificate on the first read.
		_, err = c.Read(make([]byte, 1))
		if serr := <-served; serr != nil {
			return serr
		}
		return nil
	}
	require.Error(t, dial(), "client certificate of a CA the server does not trust")
	authtest.WriteFile(t, srvFiles.CA, authtest.Bundle(ca, other))
	require.NoError(t, dial(), "server picked up the new client CA file")
	l.Close()
	<-served
}
