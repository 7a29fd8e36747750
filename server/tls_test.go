package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/auth/authtest"
	"github.com/strata-metrics/strata/tenant"
)

// startServer runs s until the test ends and returns its HTTP address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	httpL, grpcL, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, httpL, grpcL) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return httpL.Addr().String()
}

func httpsClient(roots *x509.CertPool, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := authtest.NewCA(t, "ca"), authtest.NewCA(t, "other")
	sc, sk := ca.Issue(t, "server", 1)
	f := authtest.WriteFiles(t, dir, "server", sc, sk, ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	t.Run("server certificate", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.HTTPTLS = TLSConfig{CertPath: f.Cert, KeyPath: f.Key}
		require.NoError(t, cfg.Validate())
		s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
		addr := startServer(t, s)

		c := httpsClient(roots)
		code, body, err := get(c, "https://"+addr+"/ready")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, body)

		// Plain HTTP to a TLS port gets no answer from a route.
		code, _, _ = get(&http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/ready")
		require.NotEqual(t, http.StatusOK, code)
		// TLS 1.1 is refused.
		old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}}}
		_, _, err = get(old, "https://"+addr+"/ready")
		require.Error(t, err)

		// A rotated certificate serves the next connection.
		sc2, sk2 := ca.Issue(t, "server", 2)
		authtest.WriteFiles(t, dir, "server", sc2, sk2, ca)
		c2 := httpsClient(roots)
		resp, err := c2.Get("https://" + addr + "/ready")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, int64(2), resp.TLS.PeerCertificates[0].SerialNumber.Int64())
	})

	t.Run("client certificates", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.HTTPTLS = TLSConfig{CertPath: f.Cert, KeyPath: f.Key, ClientCAPath: f.CA}
		s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
		addr := startServer(t, s)
		good := keyPair(t, ca, 10)
		bad := keyPair(t, other, 11)

		_, _, err := get(httpsClient(roots), "https://"+addr+"/ready")
		require.Error(t, err, "no client certificate")
		_, _, err = get(httpsClient(roots, bad), "https://"+addr+"/ready")
		require.Error(t, err, "client certificate of another CA")
		code, _, err := get(httpsClient(roots, good), "https://"+addr+"/ready")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	})
}

func keyPair(t *testing.T, ca *authtest.CA, serial int64) tls.Certificate {
	c, k := ca.Issue(t, "client", serial)
	kp, err := tls.X509KeyPair(c, k)
	require.NoError(t, err)
	return kp
}

// bearerAuth accepts "Bearer <tenant>" for tenant team-a only.
type bearerAuth struct{}

func (bearerAuth) Authenticate(r *http.Request) (string, error) {
	if r.Header.Get("Authorization") != "Bearer team-a" {
		return "", &tenant.UnauthenticatedError{Reason: "invalid credentials"}
	}
	return "team-a", nil
}

func TestRequireAuth(t *testing.T) {
	s := New(testConfig(t), slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
	res := tenant.Resolver{MultitenancyEnabled: true, Auth: bearerAuth{}}
	s.Handle("/api/v1/query", "query", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		_, _ = io.WriteString(w, id)
	}))
	s.RequireAuth(res.Middleware)
	addr := startServer(t, s)
	c := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		path, auth string
		wantCode   int
		wantBody   string
	}{
		{"/ready", "", 200, "ready"},
		{"/metrics", "", 200, ""},
		{"/api/v1/query", "", 401, "unauthenticated"},
		{"/api/v1/query", "Bearer team-a", 200, "team-a"},
		{"/debug/pprof/", "", 401, ""},
		{"/nowhere", "", 401, ""},
	} {
		t.Run(tc.path+" "+tc.auth, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
			require.NoError(t, err)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := c.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.wantCode, resp.StatusCode, string(b))
			require.Contains(t, string(b), tc.wantBody)
			if resp.StatusCode == 401 {
				require.Equal(t, tenant.Challenges, resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
}

func TestListenFailsOnBadTLSFiles(t *testing.T) {
	cfg := testConfig(t)
	cfg.GRPCTLS = TLSConfig{CertPath: "/nonexistent/tls.crt", KeyPath: "/nonexistent/tls.key"}
	s := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), prometheus.NewRegistry())
	_, _, err := s.Listen()
	require.ErrorContains(t, err, "load -server.grpc-tls-cert-path")
}

// TestTLSAndAuth is the built-in authentication of auth/ over HTTPS, as
// cmd/strata wires it: requests without credentials or with another
// tenant's claim are turned away before the route runs.
func TestTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "ca")
	sc, sk := ca.Issue(t, "server", 1)
	f := authtest.WriteFiles(t, dir, "server", sc, sk, ca)
	sum := sha256.Sum256([]byte("token-a"))
	tenantsFile := filepath.Join(dir, "tenants.yaml")
	authtest.WriteFile(t, tenantsFile, []byte("tenants:\n  - id: team-a\n    bearer_tokens_sha256: ["+hex.EncodeToString(sum[:])+"]\n  - id: team-b\n"))
	reg := prometheus.NewRegistry()
	authn, err := auth.New(auth.Config{TenantsFile: tenantsFile, TenantsReloadInterval: time.Minute}, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)

	cfg := testConfig(t)
	cfg.HTTPTLS = TLSConfig{CertPath: f.Cert, KeyPath: f.Key}
	s := New(cfg, slog.New(slog.DiscardHandler), reg, reg)
	res := tenant.Resolver{MultitenancyEnabled: true, Auth: authn}
	s.Handle("/api/v1/push", "push", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		_, _ = io.WriteString(w, id)
	}))
	s.RequireAuth(res.Middleware)
	addr := startServer(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	c := httpsClient(roots)
	for _, tc := range []struct {
		name, auth, orgID string
		wantCode          int
		wantBody          string
	}{
		{"no credentials", "", "", 401, "no Authorization header"},
		{"header alone", "", "team-a", 401, "no Authorization header"},
		{"wrong token", "Bearer token-b", "", 401, "invalid credentials"},
		{"token", "Bearer token-a", "", 200, "team-a"},
		{"token and own tenant", "Bearer token-a", "team-a", 200, "team-a"},
		{"token and another tenant", "Bearer token-a", "team-b", 403, `may not act as tenant "team-b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/api/v1/push", nil)
			require.NoError(t, err)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.orgID != "" {
				req.Header.Set(tenant.Header, tc.orgID)
			}
			resp, err := c.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.wantCode, resp.StatusCode, string(b))
			require.Contains(t, string(b), tc.wantBody)
		})
	}
}
