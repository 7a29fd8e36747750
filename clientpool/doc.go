// Package clientpool keeps one gRPC connection per ingester address.
//
// Flow: the distributor (Push) and the querier (QueryStream and friends)
// reach ingesters found in the ring through this pool.
// Owns: dialing (lazy, no I/O until the first call), message size limits,
// keepalive, and closing connections of addresses that left the ring.
// Does not: pick instances (the ring does) or retry (the caller decides).
package clientpool
