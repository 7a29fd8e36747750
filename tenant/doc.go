// Package tenant resolves and checks the tenant a request belongs to.
//
// Flow: every HTTP request (push and query) and every gRPC call names a
// tenant; this package turns the X-Scope-OrgID header into a checked id,
// or, with an Authenticator (auth.Authenticator, -auth.tenants-file), the
// request's credentials into the id they may act as.
// Owns: the tenant id syntax, the header name, the single-tenant default,
// the errors of resolution and their HTTP statuses (400, 401, 403, 429),
// who may use the operator pages (OperatorOnly: the admin tenant, and no
// form posted from another site), the
// Authenticator interface the auth layer implements, and the LabelCap that
// bounds the tenant label of every component's self-metrics
// (-metrics.max-tenant-labels; the rest are summed under tenant="<other>").
// Does not: check credentials (auth does, or a gateway in front) or hold
// limits.
package tenant
