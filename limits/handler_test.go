package limits

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/tenant"
)

// serve runs one request through o.Handler(tenants).
func serve(t *testing.T, o *Overrides, tenants tenant.Resolver, url string, header http.Header) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	o.Handler(tenants).ServeHTTP(rec, req)
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(b)
}

// TestHandler: with multi-tenancy off the one operator sees every entry.
func TestHandler(t *testing.T) {
	o, _, _ := newFileOverrides(t, "overrides:\n  a:\n    ingestion_rate: 5\n    max_query_length: 1h\n    out_of_order_time_window: 30m\n")
	require.NoError(t, o.Load())
	get := func(url string) (int, string) { return serve(t, o, tenant.Resolver{}, url, nil) }
	code, body := get("/runtime_config?mode=diff")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "overrides:\n    a:\n        ingestion_rate: 5\n        out_of_order_time_window: 30m0s\n        max_query_length: 1h0m0s\n", body)

	code, body = get("/runtime_config")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "defaults:\n    ingestion_rate: 0\n")
	require.Contains(t, body, "        ingestion_burst_size: 200000\n")
	// What the handler serves parses back to the same limits.
	got, err := ParseOverrides([]byte(body[strings.Index(body, "overrides:"):]), *o.Defaults())
	require.NoError(t, err)
	require.Equal(t, *o.For("a"), *got["a"])

	code, _ = get("/runtime_config?mode=x")
	require.Equal(t, http.StatusBadRequest, code)
}

// bearerAuth is a tenant.Authenticator over "Authorization: Bearer <token>".
type bearerAuth map[string]string

func (a bearerAuth) Authenticate(r *http.Request) (string, error) {
	id, ok := a[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		return "", &tenant.UnauthenticatedError{Reason: "no valid token"}
	}
	if h := r.Header.Get(tenant.Header); h != "" && h != id {
		return "", &tenant.ForbiddenError{Authenticated: id, Claimed: h}
	}
	return id, nil
}

// TestHandlerTenantViews: with multi-tenancy on, a tenant sees the defaults
// and its own entry, never another tenant's id or limits; the admin tenant
// sees every entry.
func TestHandlerTenantViews(t *testing.T) {
	const (
		alpha, bravo, charlie, admin = "tenant-alpha", "tenant-bravo", "tenant-charlie", "operator-admin"
		file                         = "overrides:\n  tenant-alpha:\n    ingestion_rate: 5\n    max_query_length: 1h\n  tenant-bravo:\n    ingestion_rate: 7\n  operator-admin:\n    ingestion_rate: 9\n"
	)
	everyone := []string{alpha, bravo, admin}
	header := tenant.Resolver{MultitenancyEnabled: true}
	auth := tenant.Resolver{MultitenancyEnabled: true, Auth: bearerAuth{"ta": alpha, "tb": bravo, "tc": charlie, "tx": admin}}
	as := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name     string
		tenants  tenant.Resolver
		noAdmin  bool // -runtime-config.admin-tenant empty
		header   http.Header
		wantCode int
		// want are the tenants whose entries a 200 has; no other id of the
		// file may appear in any answer (an error may repeat the caller's).
		want []string
	}{
		{"single tenant: everyone", tenant.Resolver{}, false, nil, 200, everyone},
		{"single tenant ignores the header", tenant.Resolver{}, false, as(tenant.Header, alpha), 200, everyone},
		{"header: alpha sees its own", header, false, as(tenant.Header, alpha), 200, []string{alpha}},
		{"header: bravo sees its own", header, false, as(tenant.Header, bravo), 200, []string{bravo}},
		{"header: a tenant without overrides sees the defaults", header, false, as(tenant.Header, charlie), 200, nil},
		{"header: admin sees everyone", header, false, as(tenant.Header, admin), 200, everyone},
		{"header: no admin configured, only its own", header, true, as(tenant.Header, admin), 200, []string{admin}},
		{"header: none", header, false, nil, http.StatusUnauthorized, nil},
		{"header: invalid", header, false, as(tenant.Header, "../x"), http.StatusBadRequest, nil},
		{"auth: alpha sees its own", auth, false, as("Authorization", "Bearer ta"), 200, []string{alpha}},
		{"auth: alpha repeating its id", auth, false, as("Authorization", "Bearer ta", tenant.Header, alpha), 200, []string{alpha}},
		{"auth: alpha claiming admin", auth, false, as("Authorization", "Bearer ta", tenant.Header, admin), http.StatusForbidden, []string{alpha, admin}},
		{"auth: admin sees everyone", auth, false, as("Authorization", "Bearer tx"), 200, everyone},
		{"auth: no credentials", auth, false, as(tenant.Header, admin), http.StatusUnauthorized, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := RuntimeConfig{File: filepath.Join(t.TempDir(), "runtime.yaml"), ReloadPeriod: time.Hour, AdminTenant: admin}
			if tc.noAdmin {
				cfg.AdminTenant = ""
			}
			writeFile(t, cfg.File, file)
			o, err := NewRuntimeOverrides(cfg, defaults(t), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			require.NoError(t, err)
			require.NoError(t, o.Load())

			for _, url := range []string{"/runtime_config", "/runtime_config?mode=diff", "/runtime_config?mode=all"} {
				code, body := serve(t, o, tc.tenants, url, tc.header)
				require.Equal(t, tc.wantCode, code, "%s: %s", url, body)
				for _, id := range everyone {
					if !contains(tc.want, id) {
						require.NotContains(t, body, id, "%s shows another tenant", url)
					}
				}
				if code != http.StatusOK {
					continue
				}
				require.Equal(t, !strings.Contains(url, "diff"), strings.Contains(body, "defaults:\n"), url)
				got, err := ParseOverrides([]byte(body[strings.Index(body, "overrides:"):]), *o.Defaults())
				require.NoError(t, err, url)
				require.Len(t, got, len(tc.want), url)
				for _, id := range tc.want {
					require.Contains(t, got, id, url)
					if !strings.Contains(url, "diff") {
						require.Equal(t, *o.For(id), *got[id], url)
					}
				}
			}
		})
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestRuntimeConfigValidateAdminTenant(t *testing.T) {
	for _, tc := range []struct{ admin, wantErr string }{
		{"", ""},
		{"operator-admin", ""},
		{"../x", "-runtime-config.admin-tenant: invalid tenant id"},
		{"a/b", "-runtime-config.admin-tenant: invalid tenant id"},
	} {
		t.Run(tc.admin, func(t *testing.T) {
			err := (&RuntimeConfig{ReloadPeriod: time.Second, AdminTenant: tc.admin}).Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
