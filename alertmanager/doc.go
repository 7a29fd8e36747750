// Package alertmanager runs one upstream Prometheus Alertmanager per tenant
// inside the process: its own routes, receivers, inhibitions, silences and
// notification log, built from the upstream packages (dispatch, inhibit,
// silence, nflog, notify, template, api) and wired here.
//
// Flow: tenant --POST /api/v1/alerts--> config in the bucket (~alertmanager/configs/<tenant>)
// --poll--> the tenant's owners in the alertmanager ring (ring.go) build or
// rebuild its Alertmanager; rules --POST /alertmanager/api/v2/alerts--> any
// replica --gRPC (forward.go)--> every owner's dispatcher --> receivers.
// Browsers --GET /alertmanager/--> upstream's web UI (ui/, embedded), whose
// API calls reach the request's tenant as above.
// Owners broadcast silence and notification log changes to each other
// and read a tenant's whole state from another owner, or from the bucket
// (~alertmanager/state/<tenant>), when they start it (replication.go).
// Owns: the tenants' Alertmanagers, their silences and notification log
// snapshots under -alertmanager.data-dir/<tenant> and in the bucket, the
// receivers' firewall, the tenants' notification rate limits per
// integration (ratelimit.go).
// Does not: evaluate rules (the ruler does), keep the ring (ring/ and the
// lifecycler in cmd/strata do).
package alertmanager
