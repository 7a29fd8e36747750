// Command strata is the one Strata binary.
//
// Flow: flags and -config.file → Config → the components of -target (all,
// distributor, ingester, querier; every one gossips and sees the ingester
// and distributor rings) → started in order, run until SIGINT or SIGTERM,
// then shut down in order: the ingester goes LEAVING, the server drains
// in-flight requests, storage closes, the lifecyclers leave the rings, and
// gossip sends that last state before it leaves.
// Owns: the process wiring, -target, advertise addresses.
// Does not: hold component logic; each component lives in its own package.
package main
