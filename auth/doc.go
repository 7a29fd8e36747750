// Package auth decides who is calling and which tenant they may act as.
//
// Flow: client --HTTP + Authorization--> tenant.Resolver (Auth set) -->
// Authenticator --> tenant id for the distributor and the querier; between
// components, --gRPC + mutual TLS--> the peer's certificate says it is one
// of ours.
// Owns: the tenants file (-auth.tenants-file: bearer-token digests and
// basic-auth users with bcrypt hashes, mapped to tenant ids), reloaded
// without a restart; the rule that credentials of one tenant cannot claim
// another with X-Scope-OrgID; the cluster secret every gRPC call between
// components carries (cluster_secret.go, -auth.cluster-secret-file); the
// bounds on password checks (throttle.go:
// failed checks per source address, bcrypt on at most half the cores);
// certificate, key and CA files reloaded on
// change for the TLS servers (server/) and clients (clientpool/).
// Does not: parse or check tenant ids (tenant/ does) or serve anything: it
// hands tenant/ an Authenticator and server/ and clientpool/ TLS configs.
//
// Direction: auth imports tenant, never the reverse. tenant defines the
// Authenticator interface it calls, so the components that resolve tenants
// depend on tenant alone and gain authentication by configuration.
package auth
