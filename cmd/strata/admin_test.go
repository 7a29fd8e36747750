package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/tenant"
)

// TestAdminOnly: the endpoints that act on every tenant's data take only
// the operator's tenant when there are tenants at all.
func TestAdminOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tc := range []struct {
		name     string
		multi    bool
		admin    string
		header   string
		wantCode int
		wantBody string
	}{
		{name: "single tenant: the operator", wantCode: http.StatusOK},
		{name: "admin tenant", multi: true, admin: "ops", header: "ops", wantCode: http.StatusOK},
		{name: "another tenant", multi: true, admin: "ops", header: "team-a", wantCode: http.StatusForbidden, wantBody: `only the operator's tenant (-runtime-config.admin-tenant) may call it, not tenant "team-a"`},
		{name: "no admin configured", multi: true, header: "team-a", wantCode: http.StatusForbidden},
		{name: "no tenant", multi: true, admin: "ops", wantCode: http.StatusUnauthorized},
		{name: "invalid tenant", multi: true, admin: "ops", header: "../x", wantCode: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := adminOnly(tenant.Resolver{MultitenancyEnabled: tc.multi}, tc.admin, ok)
			req := httptest.NewRequest(http.MethodPost, "/ingester/flush", nil)
			if tc.header != "" {
				req.Header.Set(tenant.Header, tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tc.wantBody)
		})
	}
}
