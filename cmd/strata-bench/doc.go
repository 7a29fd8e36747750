// Command strata-bench is the load generator behind `make bench`: it starts a
// fresh single-process Strata and then a fresh Debian Prometheus (remote-write
// receiver on), pushes the same remote-write load to each, runs the same
// dashboard queries, and prints each figure side by side with its ratio.
//
// Flow: prebuilt request bodies --8 senders, snappy+protobuf--> /api/v1/push
// (Strata) or /api/v1/write (Prometheus); /proc of the server --> CPU and RSS;
// /api/v1/query_range --> query latency.
// Owns: the workload (series, labels, timestamps), the measurement, the report.
// Does not: judge the figures (no thresholds) or run more than one server at a time.
//
// Run: go build -o bin/strata ./cmd/strata && go run ./cmd/strata-bench -strata.bin=bin/strata
package main
