package auth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KeyPair is a certificate and key file pair, reread when either file
// changes (mtime or size), checked at every TLS handshake: a rotated
// certificate serves the next connection, with no goroutine and no restart.
// A pair that does not load (say, the certificate is new and the key not
// yet) is logged once and the last good pair stays in use. Goroutine-safe.
type KeyPair struct {
	w *watched[*tls.Certificate]
}

// NewKeyPair watches certPath and keyPath; nothing is read until Load or
// the first handshake. flagName names the certificate flag in errors.
// strata_tls_certificate_expiry_seconds{path} reports the certificate's end.
func NewKeyPair(flagName, certPath, keyPath string, log *slog.Logger, reg prometheus.Registerer) *KeyPair {
	k := &KeyPair{w: &watched[*tls.Certificate]{
		what: flagName, paths: []string{certPath, keyPath}, log: log,
		parse: func(b [][]byte) (*tls.Certificate, time.Time, error) {
			c, err := tls.X509KeyPair(b[0], b[1])
			if err != nil {
				return nil, time.Time{}, err
			}
			return &c, c.Leaf.NotAfter, nil
		},
	}}
	registerExpiry(reg, certPath, k.w)
	return k
}

// Load reads the files now: call it at startup to fail fast.
func (k *KeyPair) Load() error {
	_, err := k.w.get()
	return err
}

// Certificate returns the current pair; tls.Config.GetCertificate and
// GetClientCertificate call it.
func (k *KeyPair) Certificate() (*tls.Certificate, error) { return k.w.get() }

// CAPool is a file of PEM CA certificates, reread on change like KeyPair.
type CAPool struct {
	w *watched[*x509.CertPool]
}

// NewCAPool watches path; nothing is read until Load or the first handshake.
func NewCAPool(flagName, path string, log *slog.Logger, reg prometheus.Registerer) *CAPool {
	p := &CAPool{w: &watched[*x509.CertPool]{
		what: flagName, paths: []string{path}, log: log,
		parse: func(b [][]byte) (*x509.CertPool, time.Time, error) {
			pool := x509.NewCertPool()
			var first time.Time
			rest := b[0]
			for {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				if blk.Type != "CERTIFICATE" {
					continue
				}
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, time.Time{}, err
				}
				pool.AddCert(c)
				if first.IsZero() || c.NotAfter.Before(first) {
					first = c.NotAfter
				}
			}
			if first.IsZero() {
				return nil, time.Time{}, errors.New("no PEM certificate found")
			}
			return pool, first, nil
		},
	}}
	registerExpiry(reg, path, p.w)
	return p
}

// Load reads the file now: call it at startup to fail fast.
func (p *CAPool) Load() error {
	_, err := p.w.get()
	return err
}

// Pool returns the current CA certificates.
func (p *CAPool) Pool() (*x509.CertPool, error) { return p.w.get() }

// ServerTLS returns a server configuration (TLS 1.2 or later) that serves
// kp's current certificate and, with clientCAs set, requires and verifies a
// client certificate signed by one of its current CAs. nextProtos is the
// ALPN list: {"h2"} for gRPC, {"h2", "http/1.1"} for HTTP.
func ServerTLS(kp *KeyPair, clientCAs *CAPool, nextProtos []string) *tls.Config {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.Certificate() }
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     nextProtos,
		GetCertificate: getCert,
		// A fresh configuration per connection picks up a reloaded CA file.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: nextProtos, GetCertificate: getCert}
			if clientCAs != nil {
				pool, err := clientCAs.Pool()
				if err != nil {
					return nil, err
				}
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
			}
			return c, nil
		},
	}
}

// ClientTLS builds client configurations from reloaded files.
type ClientTLS struct {
	// KeyPair, when set, is presented to servers that ask (mutual TLS).
	KeyPair *KeyPair
	// CA, when set, replaces the system roots for verifying servers.
	CA *CAPool
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// InsecureSkipVerify accepts any server certificate: tests only.
	InsecureSkipVerify bool
}

// Config returns a configuration for one new connection (TLS 1.2 or
// later) with the current CA certificates. Call it per handshake.
func (c *ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // operator's choice, off by default
	if c.CA != nil {
		pool, err := c.CA.Pool()
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.KeyPair != nil {
		kp := c.KeyPair
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.Certificate() }
	}
	return cfg, nil
}

// registerExpiry exports the end of validity of path's certificate. The
// same file used by a server and a client is reported once.
func registerExpiry[T any](reg prometheus.Registerer, path string, w *watched[T]) {
	if reg == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "strata_tls_certificate_expiry_seconds",
		Help:        "When the certificate in the file stops being valid (for a CA file, its first CA to expire), Unix seconds; 0 until it loads.",
		ConstLabels: prometheus.Labels{"path": path},
	}, func() float64 {
		_, _ = w.get() // a scrape notices a rotation too
		return float64(w.expiryUnix())
	})
	if err := reg.Register(g); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		panic(fmt.Sprintf("BUG: register strata_tls_certificate_expiry_seconds: %v", err))
	}
}

// watched is a value parsed from files, reparsed when one of them changes.
type watched[T any] struct {
	what  string
	paths []string
	parse func(contents [][]byte) (T, time.Time, error)
	log   *slog.Logger

	mu     sync.Mutex
	val    T
	ok     bool      // val holds a good value
	expiry time.Time // of val
	sig    []fileSig // the files as last read, good or bad
}

func (w *watched[T]) get() (T, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sig, err := statAll(w.paths)
	if err == nil && !sigsEqual(sig, w.sig) {
		err = w.load(sig)
	}
	if err != nil {
		err = fmt.Errorf("load %s: %w", w.what, err)
		if w.ok {
			if !sigsEqual(sig, w.sig) { // log a failing version once
				w.log.Warn("TLS files not reloaded; keeping the last good ones", "err", err)
				w.sig = sig
			}
			return w.val, nil
		}
		var zero T
		return zero, err
	}
	return w.val, nil
}

func (w *watched[T]) load(sig []fileSig) error {
	contents := make([][]byte, len(w.paths))
	for i, p := range w.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		contents[i] = b
	}
	v, expiry, err := w.parse(contents)
	if err != nil {
		return err
	}
	if w.ok {
		w.log.Info("TLS files reloaded", "files", w.paths, "not_after", expiry)
	}
	w.val, w.ok, w.expiry, w.sig = v, true, expiry, sig
	return nil
}

func (w *watched[T]) expiryUnix() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ok {
		return 0
	}
	return w.expiry.Unix()
}

func statAll(paths []string) ([]fileSig, error) {
	sig := make([]fileSig, len(paths))
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		sig[i] = fileSig{mtime: st.ModTime(), size: st.Size()}
	}
	return sig, nil
}

func sigsEqual(a, b []fileSig) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
