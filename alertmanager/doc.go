// Package alertmanager runs one upstream Prometheus Alertmanager per tenant
// inside the process: its own routes, receivers, inhibitions, silences and
// notification log, built from the upstream packages (dispatch, inhibit,
// silence, nflog, notify, template, api) and wired here.
//
// Flow: tenant --POST /api/v1/alerts--> config in the bucket (~alertmanager/configs/<tenant>)
// --poll--> every replica builds or rebuilds the tenant's Alertmanager;
// rules --POST /alertmanager/api/v2/alerts--> the tenant's dispatcher --> receivers.
// Browsers --GET /alertmanager/--> upstream's web UI (ui/, embedded), whose
// API calls reach the request's tenant as above.
// Owns: the tenants' Alertmanagers, their silences and notification log
// snapshots under -alertmanager.data-dir/<tenant>, the receivers' firewall,
// the tenants' notification rate limits per integration (ratelimit.go).
// Does not: evaluate rules (the ruler does), shard tenants across replicas
// or replicate silences between them: one replica serves every tenant, the
// others stand by (replicas.go).
package alertmanager
