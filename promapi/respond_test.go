package promapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/tenant"
)

// TestAuthRefusals: a refusal of the tenants file is Prometheus' error JSON
// on the API, so that Grafana and Prometheus clients show its message, and
// stays plain text on push (remote-write's convention) and other pages.
func TestAuthRefusals(t *testing.T) {
	a, err := auth.New(auth.Config{TenantsFile: filepath.Join("..", "auth", "testdata", "tenants.yaml"), TenantsReloadInterval: time.Minute},
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	res := tenant.Resolver{MultitenancyEnabled: true, Auth: a, WriteRefusal: WriteAuthError}
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := res.FromHTTP(r)
		require.NoError(t, err)
		_, _ = w.Write([]byte(id))
	}))

	creds := []struct {
		name, authorization, orgID string
		code                       int
		errorType, msg             string
	}{
		{"no credentials", "", "", http.StatusUnauthorized, "unauthorized", "unauthenticated: no Authorization header; send a bearer token or basic-auth credentials"},
		{"bad bearer", "Bearer nope", "", http.StatusUnauthorized, "unauthorized", "unauthenticated: invalid credentials"},
		{"bad basic", "Basic cHJvbWV0aGV1cy1iOndyb25n", "", http.StatusUnauthorized, "unauthorized", "unauthenticated: invalid credentials"}, // prometheus-b:wrong
		{"malformed", "Digest x", "", http.StatusUnauthorized, "unauthorized", `unauthenticated: unsupported Authorization scheme "Digest": want Bearer or Basic`},
		{"another tenant claimed", "Bearer example-token-of-team-a", "team-b", http.StatusForbidden, "forbidden", `credentials of tenant "team-a" may not act as tenant "team-b" (X-Scope-OrgID)`},
	}
	for _, path := range []string{"/api/v1/query?query=up", "/api/v1/label/job/values", "/api/v1/push", "/api/v1/write", "/ring"} {
		isAPI := strings.HasPrefix(path, "/api/v1/") && !strings.HasPrefix(path, "/api/v1/push") && !strings.HasPrefix(path, "/api/v1/write")
		for _, c := range creds {
			t.Run(path+"/"+c.name, func(t *testing.T) {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				if c.authorization != "" {
					r.Header.Set("Authorization", c.authorization)
				}
				if c.orgID != "" {
					r.Header.Set(tenant.Header, c.orgID)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				require.Equal(t, c.code, w.Code)
				if c.code == http.StatusUnauthorized {
					require.Equal(t, tenant.Challenges, w.Header().Values("WWW-Authenticate"))
				} else {
					require.Empty(t, w.Header().Values("WWW-Authenticate"))
				}
				if !isAPI {
					require.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
					require.Equal(t, c.msg+"\n", w.Body.String())
					return
				}
				require.Equal(t, "application/json", w.Header().Get("Content-Type"))
				want, err := json.Marshal(map[string]string{"status": "error", "errorType": c.errorType, "error": c.msg})
				require.NoError(t, err)
				require.JSONEq(t, string(want), w.Body.String())
			})
		}
	}
	t.Run("valid credentials pass", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
		r.SetBasicAuth("prometheus-b", "example-password-of-b")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code)
		require.Equal(t, "team-b", w.Body.String())
	})
}

func TestIsAPIPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v1/query":              true,
		"/api/v1/label/job/values":   true,
		"/api/v1/status/buildinfo":   true,
		"/api/v1/push":               false,
		"/api/v1/write":              false,
		"/api/v1":                    false,
		"/ring":                      false,
		"/runtime_config":            false,
		"/prometheus/api/v1/query":   false, // no such prefix is served
		"/api/v1/pushed_not_a_route": true,
	} {
		require.Equal(t, want, IsAPIPath(path), path)
	}
}

// TestHandlerFormErrors: a form too large is 413 and a malformed one 400,
// both saying so, never an answer as if no parameter had been sent.
func TestHandlerFormErrors(t *testing.T) {
	h := Handler(slog.New(slog.DiscardHandler), func(r *http.Request) Result {
		return Result{Data: r.FormValue("query")}
	})
	for _, tc := range []struct {
		name, method, target, body string
		wantCode                   int
		wantBody                   string
	}{
		{"11 MB form", http.MethodPost, "/api/v1/query", "query=" + strings.Repeat("a", 11<<20), 413,
			`{"status":"error","errorType":"bad_data","error":"the form body is over 10485760 bytes; a query is at most -querier.max-expression-bytes long"}`},
		{"malformed form", http.MethodPost, "/api/v1/query", "query=%zz", 400, `"error":"parse form: invalid URL escape \"%zz\""`},
		{"malformed query string", http.MethodGet, "/api/v1/query?query=%zz", "", 400, `"error":"parse form: invalid URL escape \"%zz\""`},
		{"ok", http.MethodPost, "/api/v1/query", "query=up", 200, `"data":"up"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.wantBody)
		})
	}
}
