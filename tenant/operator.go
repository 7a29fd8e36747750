package tenant

import (
	"fmt"
	"net/http"
	"net/url"
)

// Operator pages show or change what belongs to every tenant: the rings
// and gossip members (internal addresses, the Forget button), Go profiles
// (the command line names secret files), flushes and compaction runs, and
// with built-in authentication the process' own metrics (they label series
// with tenant ids). With multi-tenancy they are for the operator's tenant
// (-runtime-config.admin-tenant) only; without, whoever reaches the port
// is the operator.

// OperatorOnly guards an operator page: with multi-tenancy (or built-in
// authentication) only the tenant admin may use it; others get 403, or
// the resolver's 401 without credentials. Without multi-tenancy h is
// returned unchanged. Forms posted across origins are refused either way
// (a page of another site must not press Forget in an operator's
// browser).
func (r Resolver) OperatorOnly(admin string, h http.Handler) http.Handler {
	h = SameOriginWrites(h)
	if !r.MultitenancyEnabled && r.Auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id, err := r.FromHTTP(req)
		if err != nil {
			WriteError(w, err)
			return
		}
		if admin == "" || id != admin {
			http.Error(w, fmt.Sprintf("%s is an operator page (it shows or acts on every tenant's data): only the operator's tenant (-runtime-config.admin-tenant) may use it, not tenant %q", req.URL.Path, id), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// SameOriginWrites refuses a state-changing request (any method but GET,
// HEAD and OPTIONS) sent by another site's page: one whose Origin names
// another host, or that the browser marks Sec-Fetch-Site: cross-site or
// same-site. A browser holding a tenant's Basic credentials (the tenants
// file), or reaching a Strata without multi-tenancy, would otherwise send
// another site's form as that tenant: a text/plain form body can be YAML
// that replaces an Alertmanager configuration or a rule group. Clients
// that are not browsers send neither header; Grafana's data source proxy
// drops Origin and its page is same-origin to it.
func SameOriginWrites(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead && req.Method != http.MethodOptions {
			if site := req.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
				http.Error(w, fmt.Sprintf("%s refuses a %s from another site's page (Sec-Fetch-Site: %s)", req.URL.Path, req.Method, site), http.StatusForbidden)
				return
			}
			if o := req.Header.Get("Origin"); o != "" {
				u, err := url.Parse(o)
				// A reverse proxy that rewrites Host says the original in
				// X-Forwarded-Host; another site's page cannot set that
				// header without a CORS preflight, which is not answered.
				if err != nil || (u.Host != req.Host && u.Host != req.Header.Get("X-Forwarded-Host")) {
					http.Error(w, fmt.Sprintf("%s refuses a %s from another origin (%q is not %q)", req.URL.Path, req.Method, o, req.Host), http.StatusForbidden)
					return
				}
			}
		}
		h.ServeHTTP(w, req)
	})
}
