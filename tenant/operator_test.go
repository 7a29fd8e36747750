package tenant

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOperatorOnly: operator pages take only the operator's tenant when
// there are tenants at all, and no page of another site may post to them.
func TestOperatorOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tc := range []struct {
		name     string
		multi    bool
		admin    string
		method   string
		hdr      map[string]string
		wantCode int
		wantBody string
	}{
		{name: "single tenant: the operator", wantCode: http.StatusOK},
		{name: "admin tenant", multi: true, admin: "ops", hdr: map[string]string{Header: "ops"}, wantCode: http.StatusOK},
		{name: "another tenant", multi: true, admin: "ops", hdr: map[string]string{Header: "team-a"}, wantCode: http.StatusForbidden,
			wantBody: `/ring is an operator page (it shows or acts on every tenant's data): only the operator's tenant (-runtime-config.admin-tenant) may use it, not tenant "team-a"`},
		{name: "another tenant reading", multi: true, admin: "ops", method: http.MethodGet, hdr: map[string]string{Header: "team-a"}, wantCode: http.StatusForbidden},
		{name: "no admin configured", multi: true, hdr: map[string]string{Header: "team-a"}, wantCode: http.StatusForbidden},
		{name: "no tenant", multi: true, admin: "ops", wantCode: http.StatusUnauthorized},
		{name: "invalid tenant", multi: true, admin: "ops", hdr: map[string]string{Header: "../x"}, wantCode: http.StatusBadRequest},
		{name: "cross-origin form post", hdr: map[string]string{"Origin": "https://evil.example"}, wantCode: http.StatusForbidden,
			wantBody: `/ring refuses a POST from another origin ("https://evil.example" is not "strata.test:9009")`},
		{name: "cross-site fetch", multi: true, admin: "ops", hdr: map[string]string{Header: "ops", "Sec-Fetch-Site": "cross-site"}, wantCode: http.StatusForbidden,
			wantBody: "/ring refuses a POST from another site's page (Sec-Fetch-Site: cross-site)"},
		{name: "same-origin form post", hdr: map[string]string{"Origin": "http://strata.test:9009", "Sec-Fetch-Site": "same-origin"}, wantCode: http.StatusOK},
		{name: "behind a proxy that rewrites Host", hdr: map[string]string{"Origin": "https://strata.example.com", "X-Forwarded-Host": "strata.example.com"}, wantCode: http.StatusOK},
		{name: "a forwarded host that is not the origin", hdr: map[string]string{"Origin": "https://evil.example", "X-Forwarded-Host": "strata.example.com"}, wantCode: http.StatusForbidden},
		{name: "cross-origin read is only a read", method: http.MethodGet, hdr: map[string]string{"Origin": "https://evil.example"}, wantCode: http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Resolver{MultitenancyEnabled: tc.multi}.OperatorOnly(tc.admin, ok)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "http://strata.test:9009/ring", nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.wantBody)
		})
	}
}
