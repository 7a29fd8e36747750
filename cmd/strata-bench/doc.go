// Command strata-bench is the load generator behind `make bench`.
//
// -mode=single (the default) starts a fresh single-process Strata and then a
// fresh Debian Prometheus (remote-write receiver on), pushes the same
// remote-write load to each, runs the same dashboard queries, and prints each
// figure side by side with its ratio.
//
// -mode=cluster starts a loopback cluster of the strata binary — 3 ingesters
// (one after another, each waited for until /ready, so token shares are
// even), 2 distributors, 1 querier — at RF=3 with one zone per ingester,
// pushes the load taking turns between the distributors, reads CPU and
// memory of every process, queries through the querier, stops it, and does
// the same at RF=1: the ratio column is the cost of replication.
//
// Flow: prebuilt request bodies --8 senders, snappy+protobuf--> /api/v1/push
// (Strata, or its distributors) or /api/v1/write (Prometheus); /proc of each
// server process --> CPU and RSS; an ingester's /metrics --> its active
// series; /api/v1/query_range --> query latency.
// Owns: the workload (series, labels, timestamps), the measurement, the report.
// Does not: judge the figures (no thresholds) or run two measured servers or
// clusters at a time.
//
// Run: go build -o bin/strata ./cmd/strata && go run ./cmd/strata-bench -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=cluster -strata.bin=bin/strata
package main
