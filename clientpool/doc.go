// Package clientpool keeps one gRPC connection per ingester address.
//
// Flow: the distributor (Push) and the querier (QueryStream and friends)
// reach ingesters found in the ring through this pool.
// Owns: dialing (lazy, no I/O until the first call), plain or TLS with an
// optional client certificate (-ingester.client.tls-*, files reread at the
// next handshake after they change), message size limits, keepalive, and
// closing connections of addresses that left the ring.
// Does not: pick instances (the ring does) or retry (the caller decides).
package clientpool
