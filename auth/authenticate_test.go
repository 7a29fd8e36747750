package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/strata-metrics/strata/auth/authtest"
	"github.com/strata-metrics/strata/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	tokenA = "token-of-team-a"
	tokenB = "token-of-team-b"
)

func digest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// bcryptHash hashes at the lowest cost: tests need the format, not the cost.
func bcryptHash(t testing.TB, password string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	require.NoError(t, err)
	return string(h)
}

func tenantsYAML(t testing.TB) string {
	return `tenants:
  - id: team-a
    bearer_tokens_sha256: [` + digest(tokenA) + `]
    users:
      - name: prom-a
        password_bcrypt: "` + bcryptHash(t, "pw-a") + `"
      - name: htpasswd-a
        password_bcrypt: "` + strings.Replace(bcryptHash(t, "pw-h"), "$2a$", "$2y$", 1) + `"
  - id: team-b
    bearer_tokens_sha256: ["` + digest(tokenB) + `", "` + digest("second-token-of-b") + `"]
`
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func newTestAuthenticator(t testing.TB, content string) (*Authenticator, string, *prometheus.Registry) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	authtest.WriteFile(t, path, []byte(content))
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.TenantsFile = path
	require.NoError(t, cfg.Validate())
	reg := prometheus.NewRegistry()
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	require.NoError(t, err)
	a.dummyHash = []byte(bcryptHash(t, "x")) // unknown users at the test cost
	return a, path, reg
}

// The hash checked for unknown users must cost what a real one does, or
// timing tells which users exist.
func TestDummyHashCostsAsMuchAsARealOne(t *testing.T) {
	cost, err := bcrypt.Cost([]byte(dummyHash))
	require.NoError(t, err)
	require.Equal(t, bcrypt.DefaultCost, cost)
}

// testdata/tenants.yaml is the documented example; it must load.
func TestExampleTenantsFile(t *testing.T) {
	b, err := os.ReadFile("testdata/tenants.yaml")
	require.NoError(t, err)
	tb, err := parseTenantsFile(b)
	require.NoError(t, err)
	require.Equal(t, "team-a", tb.tokens[sha256.Sum256([]byte("example-token-of-team-a"))])
	require.Equal(t, "team-b", tb.users["prometheus-b"].tenant)
}

func request(auth []string, orgIDs ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/push", nil)
	for _, v := range auth {
		r.Header.Add("Authorization", v)
	}
	for _, v := range orgIDs {
		r.Header.Add(tenant.Header, v)
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	a, _, reg := newTestAuthenticator(t, tenantsYAML(t))
	for _, tc := range []struct {
		name       string
		auth       []string
		orgIDs     []string
		want       string
		wantStatus int
		wantErr    string
	}{
		{"no credentials", nil, nil, "", 401, "no Authorization header"},
		{"no credentials, header only", nil, []string{"team-a"}, "", 401, "no Authorization header"},
		{"right token", []string{"Bearer " + tokenA}, nil, "team-a", 0, ""},
		{"scheme is case-insensitive", []string{"bearer " + tokenA}, nil, "team-a", 0, ""},
		{"several spaces after scheme", []string{"Bearer   " + tokenB}, nil, "team-b", 0, ""},
		{"second token of a tenant", []string{"Bearer second-token-of-b"}, nil, "team-b", 0, ""},
		{"wrong token", []string{"Bearer nope"}, nil, "", 401, "invalid credentials"},
		{"token digest is not a token", []string{"Bearer " + digest(tokenA)}, nil, "", 401, "invalid credentials"},
		{"right token, own tenant in header", []string{"Bearer " + tokenA}, []string{"team-a"}, "team-a", 0, ""},
		{"right token, other tenant in header", []string{"Bearer " + tokenA}, []string{"team-b"}, "", 403, `may not act as tenant "team-b"`},
		{"right token, own and other tenant in headers", []string{"Bearer " + tokenA}, []string{"team-a", "team-b"}, "", 403, "team-b"},
		{"right token, bad tenant in header", []string{"Bearer " + tokenA}, []string{"../x"}, "", 403, "../x"},
		{"basic right password", []string{basic("prom-a", "pw-a")}, nil, "team-a", 0, ""},
		{"basic, htpasswd's $2y$ hash", []string{basic("htpasswd-a", "pw-h")}, nil, "team-a", 0, ""},
		{"basic right password, other tenant", []string{basic("prom-a", "pw-a")}, []string{"team-b"}, "", 403, "team-b"},
		{"basic wrong password", []string{basic("prom-a", "pw-b")}, nil, "", 401, "invalid credentials"},
		{"basic empty password", []string{basic("prom-a", "")}, nil, "", 401, "invalid credentials"},
		{"basic unknown user", []string{basic("nobody", "pw-a")}, nil, "", 401, "invalid credentials"},
		{"basic token as password", []string{basic("team-a", tokenA)}, nil, "", 401, "invalid credentials"},
		{"two Authorization headers", []string{"Bearer " + tokenA, "Bearer " + tokenA}, nil, "", 401, "2 Authorization headers"},
		{"scheme only", []string{"Bearer"}, nil, "", 401, "malformed"},
		{"scheme and space", []string{"Bearer "}, nil, "", 401, "empty Bearer credentials"},
		{"unknown scheme", []string{"Digest " + tokenA}, nil, "", 401, `unsupported Authorization scheme "Digest"`},
		{"token with space", []string{"Bearer " + tokenA + " x"}, nil, "", 401, "token68"},
		{"token with trailing space", []string{"Bearer " + tokenA + " "}, nil, "", 401, "token68"},
		{"token with control char", []string{"Bearer tok\x00en"}, nil, "", 401, "token68"},
		{"token with inner padding", []string{"Bearer ab=cd"}, nil, "", 401, "token68"},
		{"basic not base64", []string{"Basic !!!"}, nil, "", 401, "token68"},
		{"basic bad padding", []string{"Basic " + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte("prom-a:pw-a")), "=")}, nil, "", 401, "not base64"},
		{"basic without colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("prom-a"))}, nil, "", 401, "not user:password"},
		{"basic empty user", []string{basic("", "pw-a")}, nil, "", 401, "not user:password"},
		{"basic not utf-8", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("prom-a:\xff"))}, nil, "", 401, "not UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Authenticate(request(tc.auth, tc.orgIDs...))
			if tc.wantStatus != 0 {
				require.Error(t, err)
				require.Equal(t, tc.wantStatus, tenant.HTTPStatus(err), "error %v", err)
				require.ErrorContains(t, err, tc.wantErr)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP strata_auth_requests_total Authenticated requests by outcome: ok, missing, malformed, invalid (unknown credentials), forbidden (another tenant claimed) or throttled (basic credentials refused unchecked: their source failed too often).
# TYPE strata_auth_requests_total counter
strata_auth_requests_total{outcome="forbidden"} 4
strata_auth_requests_total{outcome="invalid"} 6
strata_auth_requests_total{outcome="malformed"} 13
strata_auth_requests_total{outcome="missing"} 2
strata_auth_requests_total{outcome="ok"} 7
strata_auth_requests_total{outcome="throttled"} 0
`), "strata_auth_requests_total"))
}

// The errors travel as tenant's, so code that maps ErrMissing to 401 (the
// distributor's httpStatus) needs no change.
func TestErrorsMapLikeTenantErrors(t *testing.T) {
	a, _, _ := newTestAuthenticator(t, tenantsYAML(t))
	_, err := a.Authenticate(request([]string{"Bearer nope"}))
	require.True(t, errors.Is(err, tenant.ErrMissing))
	_, err = a.Authenticate(request([]string{"Bearer " + tokenA}, "team-b"))
	require.True(t, errors.As(err, new(*tenant.ForbiddenError)))
}

func TestPasswordCache(t *testing.T) {
	a, path, _ := newTestAuthenticator(t, tenantsYAML(t))
	auth := []string{basic("prom-a", "pw-a")}
	got, err := a.Authenticate(request(auth))
	require.NoError(t, err)
	require.Equal(t, "team-a", got)
	require.Len(t, a.cache, 1)
	// A wrong password is not remembered.
	_, err = a.Authenticate(request([]string{basic("prom-a", "guess")}))
	require.Error(t, err)
	require.Len(t, a.cache, 1)

	// The cached entry serves without bcrypt while the table is current...
	got, err = a.Authenticate(request(auth))
	require.NoError(t, err)
	require.Equal(t, "team-a", got)

	// ...and stops counting when a reload changes the password.
	changed := tenantsYAML(t)
	changed = changed[:strings.Index(changed, "password_bcrypt")] + `password_bcrypt: "` + bcryptHash(t, "new-pw") + `"` + changed[strings.Index(changed, "\n      - name: htpasswd-a"):]
	authtest.WriteFile(t, path, []byte(changed))
	require.NoError(t, a.reload())
	_, err = a.Authenticate(request(auth))
	require.ErrorContains(t, err, "invalid credentials")
	got, err = a.Authenticate(request([]string{basic("prom-a", "new-pw")}))
	require.NoError(t, err)
	require.Equal(t, "team-a", got)
}

func TestPasswordCacheIsBounded(t *testing.T) {
	a, _, _ := newTestAuthenticator(t, tenantsYAML(t))
	old := &table{}
	for i := range maxCachedPasswords {
		a.cache[sha256.Sum256([]byte{byte(i), byte(i >> 8)})] = cached{tenant: "x", table: old}
	}
	_, err := a.Authenticate(request([]string{basic("prom-a", "pw-a")}))
	require.NoError(t, err)
	require.LessOrEqual(t, len(a.cache), maxCachedPasswords)
}

func TestReload(t *testing.T) {
	a, path, reg := newTestAuthenticator(t, tenantsYAML(t))
	reloadOK := func() float64 {
		return testutil.ToFloat64(a.reloadOK)
	}
	require.Equal(t, 1.0, reloadOK())
	_, err := a.Authenticate(request([]string{"Bearer " + tokenA}))
	require.NoError(t, err)

	// team-a's token moves to team-c; team-a loses it.
	moved := strings.Replace(tenantsYAML(t), "id: team-a", "id: team-c", 1)
	authtest.WriteFile(t, path, []byte(moved))
	require.NoError(t, a.reload())
	got, err := a.Authenticate(request([]string{"Bearer " + tokenA}))
	require.NoError(t, err)
	require.Equal(t, "team-c", got)

	// A file that does not parse keeps the last good one.
	for _, bad := range []string{
		"tenants: [",
		"tenants:\n  - id: ../x\n",
		"tenants:\n  - id: a\n  - id: a\n",
		"tenants:\n  - id: a\n    bearer_tokens_sha256: [abc]\n",
		"tenants:\n  - id: a\n    bearer_tokens_sha256: [" + digest("t") + "]\n  - id: b\n    bearer_tokens_sha256: [" + digest("t") + "]\n",
		"tenants:\n  - id: a\n    users: [{name: u, password_bcrypt: plain}]\n",
		"tenants:\n  - id: a\n    users: [{name: 'u:v', password_bcrypt: plain}]\n",
		"tenants:\n  - id: a\n    userz: []\n",
	} {
		authtest.WriteFile(t, path, []byte(bad))
		require.Error(t, a.reload(), bad)
		require.Equal(t, 0.0, reloadOK())
		got, err := a.Authenticate(request([]string{"Bearer " + tokenA}))
		require.NoError(t, err)
		require.Equal(t, "team-c", got)
	}
	// A missing file too.
	require.NoError(t, os.Remove(path))
	require.ErrorContains(t, a.reload(), "stat -auth.tenants-file")
	_, err = a.Authenticate(request([]string{"Bearer " + tokenA}))
	require.NoError(t, err)

	// Run picks up a good file again.
	ctx, cancel := context.WithCancel(context.Background())
	a.cfg.TenantsReloadInterval = time.Millisecond
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	authtest.WriteFile(t, path, []byte(tenantsYAML(t)))
	require.Eventually(t, func() bool {
		got, err := a.Authenticate(request([]string{"Bearer " + tokenA}))
		return err == nil && got == "team-a"
	}, 10*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, 1.0, reloadOK())
	n, err := testutil.GatherAndCount(reg, "strata_auth_tenants_file_last_reload_success_timestamp_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func TestNewFailsOnBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.yaml")
	authtest.WriteFile(t, path, []byte("tenants: ["))
	_, err := New(Config{TenantsFile: path, TenantsReloadInterval: time.Second}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.ErrorContains(t, err, "load -auth.tenants-file")
	_, err = New(Config{TenantsFile: path + ".missing", TenantsReloadInterval: time.Second}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.ErrorContains(t, err, "stat -auth.tenants-file")
}

func TestConfigResolver(t *testing.T) {
	cfg := Config{MultitenancyEnabled: true}
	require.Equal(t, tenant.Resolver{MultitenancyEnabled: true}, cfg.Resolver(nil))
	require.Nil(t, cfg.Resolver(nil).Auth, "no typed nil")
	a, _, _ := newTestAuthenticator(t, tenantsYAML(t))
	res := (&Config{}).Resolver(a)
	require.True(t, res.MultitenancyEnabled)
	got, err := res.FromHTTP(request([]string{"Bearer " + tokenA}))
	require.NoError(t, err)
	require.Equal(t, "team-a", got)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, (&Config{}).Validate())
	require.ErrorContains(t, (&Config{TenantsFile: "x"}).Validate(), "-auth.tenants-file-reload-interval")
}

func BenchmarkAuthenticate(b *testing.B) {
	a, _, _ := newTestAuthenticator(b, tenantsYAML(b))
	for _, bc := range []struct{ name, auth string }{
		{"bearer", "Bearer " + tokenA},
		{"basic_cached", basic("prom-a", "pw-a")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := request([]string{bc.auth}, "team-a")
			if _, err := a.Authenticate(r); err != nil { // fills the cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFailedLoginsThrottled: a source that failed failureBurst password
// checks gets 429 for its next uncached basic credentials, without a
// bcrypt check, until its budget refills; other sources, bearer tokens
// and credentials already checked are not held up.
func TestFailedLoginsThrottled(t *testing.T) {
	a, _, _ := newTestAuthenticator(t, tenantsYAML(t))
	now := time.Unix(1_700_000_000, 0)
	a.fails = newFailures(func() time.Time { return now })
	from := func(src, auth string) *http.Request {
		r := request([]string{auth})
		r.RemoteAddr = src + ":40000"
		return r
	}
	// A right password checked once is remembered, and passes throttled.
	_, err := a.Authenticate(from("192.0.2.7", basic("prom-a", "pw-a")))
	require.NoError(t, err)
	for i := range failureBurst {
		_, err := a.Authenticate(from("192.0.2.7", basic("prom-a", fmt.Sprintf("guess-%d", i))))
		require.Equal(t, http.StatusUnauthorized, tenant.HTTPStatus(err), "guess %d: %v", i, err)
	}
	_, err = a.Authenticate(from("192.0.2.7", basic("prom-a", "guess-x")))
	require.Equal(t, http.StatusTooManyRequests, tenant.HTTPStatus(err), "%v", err)
	require.EqualError(t, err, `too many failed logins from 192.0.2.7 as user "prom-a": retry in 1s`)
	rec := httptest.NewRecorder()
	tenant.WriteError(rec, err)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))

	got, err := a.Authenticate(from("192.0.2.7", basic("prom-a", "pw-a")))
	require.NoError(t, err, "a remembered password passes a throttled source")
	require.Equal(t, "team-a", got)
	got, err = a.Authenticate(from("192.0.2.7", "Bearer "+tokenA))
	require.NoError(t, err, "bearer tokens cost no bcrypt and are not throttled")
	require.Equal(t, "team-a", got)
	_, err = a.Authenticate(from("198.51.100.9", basic("prom-a", "guess-y")))
	require.Equal(t, http.StatusUnauthorized, tenant.HTTPStatus(err), "another source is checked: %v", err)
	_, err = a.Authenticate(from("192.0.2.7", basic("prom-b", "guess-u")))
	require.Equal(t, http.StatusUnauthorized, tenant.HTTPStatus(err), "another user behind the same address is checked: %v", err)

	now = now.Add(failureEvery)
	_, err = a.Authenticate(from("192.0.2.7", basic("prom-a", "guess-z")))
	require.Equal(t, http.StatusUnauthorized, tenant.HTTPStatus(err), "one more check after a refill: %v", err)
	_, err = a.Authenticate(from("192.0.2.7", basic("prom-a", "guess-w")))
	require.Equal(t, http.StatusTooManyRequests, tenant.HTTPStatus(err))
	require.Equal(t, 2.0, testutil.ToFloat64(a.outcomes[outcomeThrottled]))
}

func TestFailureSourcesBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := newFailures(func() time.Time { return now })
	for i := range maxFailureSources + 100 {
		f.failed(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	require.LessOrEqual(t, len(f.sources), maxFailureSources)
	require.Equal(t, max(1, runtime.GOMAXPROCS(0)/2), cap(bcryptSlots()))
}
