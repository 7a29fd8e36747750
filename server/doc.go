// Package server runs one process's HTTP and gRPC listeners.
//
// Flow: every component mounts its routes (push, PromQL API, ring page) and
// gRPC services here; the server adds what all of them share.
// Owns: listeners, graceful shutdown with a deadline, request metrics by
// route and status code, /ready, /metrics, /debug/pprof/, the process logger.
// Does not: know what a route does.
package server
