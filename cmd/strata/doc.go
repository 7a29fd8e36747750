// Command strata is the one Strata binary.
//
// Flow: flags and -config.file → Config → the wiring every target shares
// (gossip, the rings, limits, tenants) → the modules of -target from the
// module list (wire.go: modules; all, or one of distributor, ingester,
// querier, store-gateway, compactor, ruler) → started in dependency order, run
// until SIGINT or SIGTERM, then shut down in reverse: the ingester goes
// LEAVING, the server drains in-flight requests, the modules stop (storage
// closes), the lifecyclers leave the rings, and gossip sends that last
// state before it leaves. `strata backfill ...` is a command of its own
// (backfill.go, package backfill): its own flags, no server.
// Owns: the process wiring, -target, advertise addresses.
// Does not: hold component logic; each component lives in its own package.
package main
