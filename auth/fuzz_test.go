package auth

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
)

// FuzzAuthHeader feeds any Authorization and X-Scope-OrgID header to
// Authenticate: it must never panic, and it may accept only a well-formed
// header carrying exactly a known credential, with the header (if any)
// naming the credential's own tenant. Seeds: testdata/fuzz/FuzzAuthHeader.
func FuzzAuthHeader(f *testing.F) {
	a, _, _ := newTestAuthenticator(f, tenantsYAML(f))
	f.Add("Bearer "+tokenA, "")
	f.Add(basic("prom-a", "pw-a"), "team-a")
	f.Fuzz(func(t *testing.T, authorization, orgID string) {
		r := request([]string{authorization})
		if orgID != "" {
			r.Header.Set("X-Scope-OrgID", orgID)
		}
		got, err := a.Authenticate(r)
		if err != nil {
			if got != "" {
				t.Fatalf("error %v with tenant %q", err, got)
			}
			return
		}
		if orgID != "" && orgID != got {
			t.Fatalf("%q accepted as %q while the header claims %q", authorization, got, orgID)
		}
		if want := reference(authorization); want != got {
			t.Fatalf("%q accepted as %q; the reference says %q", authorization, got, want)
		}
	})
}

// reference is a second, simpler reading of the credentials the test file
// defines: the tenant, or "" for anything else.
func reference(h string) string {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return ""
	}
	rest = strings.TrimLeft(rest, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		switch rest {
		case tokenA:
			return "team-a"
		case tokenB, "second-token-of-b":
			return "team-b"
		}
	case "basic":
		if slices.Contains([]string{base64.StdEncoding.EncodeToString([]byte("prom-a:pw-a"))}, rest) {
			return "team-a"
		}
	}
	return ""
}
