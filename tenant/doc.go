// Package tenant resolves and checks the tenant a request belongs to.
//
// Flow: every HTTP request (push and query) and every gRPC call names a
// tenant; this package turns the X-Scope-OrgID header into a checked id.
// Owns: the tenant id syntax, the header name, the single-tenant default.
// Does not: authenticate (a gateway or the auth layer does) or hold limits.
package tenant
