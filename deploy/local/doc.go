// Command local starts, inspects and stops a real multi-process Strata
// cluster on loopback: 3 ingesters and 3 store-gateways in 3 zones
// (zone-aware, RF=3 for both), 2 distributors, 1 querier and 1 compactor,
// each its own strata process, all sharing one filesystem bucket
// (<dir>/bucket) as their long-term object storage. The topology is
// deploy.LocalCluster.
//
// Flow: `make cluster` --build--> bin/strata; `go run ./deploy/local start`
// --starts--> 10 detached processes, gossip-joined (ingesters and
// store-gateways one at a time, each ACTIVE before the next registers, so
// each owns a third of its ring), PIDs in <dir>/state.json;
// `go run ./deploy/local stop` (`make cluster-stop`) --SIGTERM, then SIGKILL
// after -grace--> exactly the PIDs of that file.
// Owns: <dir> (default deploy/local/.data): one data dir and one log file
// per process, the shared bucket and the state file.
// Does not: signal any process it did not start: before signalling a PID it
// checks that /proc/<pid>/cmdline is still the strata binary with that
// node's -instance.id, so a reused PID is left alone.
//
// Usage:
//
//	go run ./deploy/local start [-bin bin/strata] [-dir deploy/local/.data] [-base-port 19000]
//	go run ./deploy/local status [-dir ...]
//	go run ./deploy/local stop [-dir ...] [-grace 30s]
//
// Node i listens on HTTP base-port+i, gRPC base-port+100+i and gossip
// base-port+200+i, all on 127.0.0.1; `make cluster CLUSTER_PORT_BASE=20000`
// passes -base-port.
package main
