package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestStackAuth runs the process with -auth.tenants-file: credentials name
// the tenant on every route but /ready, nobody can claim another tenant
// with X-Scope-OrgID, and the operator pages (/metrics, /debug/pprof/,
// the rings, /memberlist) are the admin tenant's (team-b here) only.
func TestStackAuth(t *testing.T) {
	file, err := filepath.Abs("../../auth/testdata/tenants.yaml")
	require.NoError(t, err)
	s := startStack(t, t.TempDir(), "-auth.multitenancy-enabled", "-auth.tenants-file="+file, "-runtime-config.admin-tenant=team-b")

	body := func() []byte {
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  lbls("__name__", "auth_test", "job", "a"),
			Samples: []prompb.Sample{{Timestamp: time.Now().Add(-time.Minute).UnixMilli(), Value: 1}},
		}}}
		b, err := req.Marshal()
		require.NoError(t, err)
		return snappy.Encode(nil, b)
	}
	do := func(method, path string, b []byte, hdr map[string]string) (int, string) {
		r, err := http.NewRequest(method, s.base+path, bytes.NewReader(b))
		require.NoError(t, err)
		r.Header.Set("Content-Encoding", "snappy")
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	tokenA := map[string]string{"Authorization": "Bearer example-token-of-team-a"}
	basicB := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("prometheus-b:example-password-of-b"))}
	for _, tc := range []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		want   int
	}{
		{"push without credentials", http.MethodPost, "/api/v1/push", nil, http.StatusUnauthorized},
		{"push with a wrong token", http.MethodPost, "/api/v1/push", map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"push as team-a", http.MethodPost, "/api/v1/push", tokenA, http.StatusNoContent},
		{"push as team-a claiming team-b", http.MethodPost, "/api/v1/push", map[string]string{"Authorization": "Bearer example-token-of-team-a", "X-Scope-OrgID": "team-b"}, http.StatusForbidden},
		{"push as team-a naming itself", http.MethodPost, "/api/v1/push", map[string]string{"Authorization": "Bearer example-token-of-team-a", "X-Scope-OrgID": "team-a"}, http.StatusNoContent},
		{"header alone is not enough", http.MethodPost, "/api/v1/push", map[string]string{"X-Scope-OrgID": "team-a"}, http.StatusUnauthorized},
		{"query without credentials", http.MethodGet, "/api/v1/query?query=auth_test", nil, http.StatusUnauthorized},
		{"ring page needs credentials", http.MethodGet, "/ring", nil, http.StatusUnauthorized},
		{"ready stays open", http.MethodGet, "/ready", nil, http.StatusOK},
		{"metrics need credentials", http.MethodGet, "/metrics", nil, http.StatusUnauthorized},
		{"metrics are the operator's", http.MethodGet, "/metrics", tokenA, http.StatusForbidden},
		{"metrics for the operator", http.MethodGet, "/metrics", basicB, http.StatusOK},
		{"command line is the operator's", http.MethodGet, "/debug/pprof/cmdline", tokenA, http.StatusForbidden},
		{"command line for the operator", http.MethodGet, "/debug/pprof/cmdline", basicB, http.StatusOK},
		{"ring is the operator's", http.MethodGet, "/ring", tokenA, http.StatusForbidden},
		{"ring for the operator", http.MethodGet, "/ring", basicB, http.StatusOK},
		{"memberlist is the operator's", http.MethodGet, "/memberlist", tokenA, http.StatusForbidden},
		{"store-gateway ring is the operator's", http.MethodGet, "/store-gateway/ring", tokenA, http.StatusForbidden},
		{"forget is the operator's", http.MethodPost, "/ring", tokenA, http.StatusForbidden},
		{"forget from another site's page", http.MethodPost, "/ring", map[string]string{"Authorization": basicB["Authorization"], "Origin": "https://evil.example"}, http.StatusForbidden},
		{"flush is the operator's", http.MethodPost, "/ingester/flush", tokenA, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			if tc.method == http.MethodPost {
				b = body()
			}
			code, out := do(tc.method, tc.path, b, tc.hdr)
			require.Equal(t, tc.want, code, out)
		})
	}

	// A refusal is Prometheus' error JSON on the query API and plain text
	// on push and the other pages.
	for _, cred := range []struct{ name, authorization string }{
		{"no credentials", ""},
		{"bad bearer", "Bearer nope"},
		{"bad basic", "Basic cHJvbWV0aGV1cy1iOndyb25n"}, // prometheus-b:wrong
	} {
		for _, tc := range []struct {
			method, path string
			json         bool
		}{
			{http.MethodGet, "/api/v1/query?query=auth_test", true},
			{http.MethodGet, "/api/v1/labels", true},
			{http.MethodPost, "/api/v1/push", false},
			{http.MethodGet, "/ring", false},
		} {
			t.Run(cred.name+" "+tc.path, func(t *testing.T) {
				var hdr map[string]string
				if cred.authorization != "" {
					hdr = map[string]string{"Authorization": cred.authorization}
				}
				var b []byte
				if tc.method == http.MethodPost {
					b = body()
				}
				code, out := do(tc.method, tc.path, b, hdr)
				require.Equal(t, http.StatusUnauthorized, code, out)
				if tc.json {
					require.True(t, strings.HasPrefix(out, `{"status":"error","errorType":"unauthorized","error":"unauthenticated: `), out)
				} else {
					require.True(t, strings.HasPrefix(out, "unauthenticated: "), out)
				}
			})
		}
	}

	// team-a sees its series; team-b (basic auth) sees none of them.
	code, out := do(http.MethodGet, "/api/v1/query?query=auth_test", nil, tokenA)
	require.Equal(t, http.StatusOK, code, out)
	require.Contains(t, out, `"job":"a"`)
	r, err := http.NewRequest(http.MethodGet, s.base+"/api/v1/query?query=auth_test", nil)
	require.NoError(t, err)
	r.SetBasicAuth("prometheus-b", "example-password-of-b")
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	outB, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(outB))
	require.Contains(t, string(outB), `"result":[]`)
}
