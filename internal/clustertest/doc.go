// Package clustertest runs a Strata cluster of real components inside one
// test process: distributors, ingesters and queriers, each with its own
// memberlist gossip and registry, talking over loopback gRPC, as separate
// processes would.
//
// Flow: test --Push--> distributor --gRPC--> ingesters <--gRPC-- querier <--Query-- test.
// Owns: every goroutine, listener and data directory of the cluster; all
// stop in t.Cleanup.
// Does not: run the strata binary or its flag wiring (cmd/strata and e2e do),
// nor long-term storage (store-gateway, compactor, bucket).
package clustertest
