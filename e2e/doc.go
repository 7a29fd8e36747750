// Package e2e tests Strata end to end with real processes: the strata binary
// built from ./cmd/strata, Debian's prometheus (2.42) and
// prometheus-node-exporter, all on loopback ports.
//
// Flow: node_exporter and strata's /metrics --scrape--> prometheus
// --remote-write--> strata; the tests compare raw samples and PromQL answers,
// kill -9 and restart strata, and feed it malformed requests.
// Owns: only tests (this file exists so the package has a doc); processes
// come from internal/procs and never outlive a test.
// Does not: run in-process components (internal/clustertest does that).
//
// Every test talks HTTP through one client (client_test.go: Prometheus API,
// push, remote read, ring pages, /metrics, raw requests with tenant
// headers), reads the S3 bucket through one bucket (bucket_test.go), and
// waits with poll (poll_test.go), never a bare sleep.
//
// Run: go test ./e2e/ (builds the binary once; $STRATA_BIN skips the build).
// Without the Debian binaries the tests skip, except where $CI is set.
package e2e
