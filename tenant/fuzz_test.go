package tenant

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzTenantHeader feeds any X-Scope-OrgID header value (one or two
// headers) to Resolver.FromHTTP: it must never panic, and whatever it
// accepts is exactly the one header's value and passes Validate. Seeds:
// testdata/fuzz/FuzzTenantHeader.
func FuzzTenantHeader(f *testing.F) {
	f.Add("team-a", "")
	f.Add("../x", "")
	f.Fuzz(func(t *testing.T, first, second string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header[Header] = []string{first}
		if second != "" {
			r.Header[Header] = append(r.Header[Header], second)
		}
		id, err := Resolver{MultitenancyEnabled: true}.FromHTTP(r)
		if err != nil {
			if id != "" {
				t.Fatalf("error %v with id %q", err, id)
			}
			if s := HTTPStatus(err); s != http.StatusBadRequest && s != http.StatusUnauthorized {
				t.Fatalf("status %d for %v", s, err)
			}
			return
		}
		if second != "" {
			t.Fatalf("two headers %q, %q accepted as %q", first, second, id)
		}
		if id != first || Validate(id) != nil {
			t.Fatalf("header %q accepted as %q", first, id)
		}
		if id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00 |") || len(id) > MaxIDLength {
			t.Fatalf("unsafe id %q accepted", id)
		}
	})
}
