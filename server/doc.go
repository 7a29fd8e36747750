// Package server runs one process's HTTP and gRPC listeners.
//
// Flow: every component mounts its routes (push, PromQL API, ring page) and
// gRPC services here; the server adds what all of them share.
// Owns: listeners (TLS 1.2+ from certificate files reloaded on change,
// -server.{http,grpc}-tls-*; mutual TLS with a client CA file), graceful
// shutdown with a deadline, request metrics by route and status code,
// /ready, /metrics, /debug/pprof/ (behind the operator guard the caller
// sets), gRPC connection bounds (grpc_conns.go: handshake timeout, idle
// close, most connections), the process logger, and putting every mounted
// route behind an authentication middleware (RequireAuth).
// Does not: know what a route does.
package server
