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
// -mode=noisy checks tenant isolation: it starts strata with
// multi-tenancy on and a runtime overrides file limiting tenant A to 10,000
// samples/s, has tenant B push at a steady real-time rate alone, then again
// while tenant A's connections flood far over A's limit, re-sending every
// push answered 429 at once. It reports B's pushes and latency in both
// phases, A's answers, and strata's CPU and RSS; it exits non-zero when any
// push of B failed, and says PASS or MISS for B's p99 within 2x of solo.
// -noisy.cluster runs it against a loopback cluster instead.
//
// -mode=longterm measures long-term storage. It writes
// node_exporter-like data (series.go's label sets; integer counters, CPU
// ticks, gauges in whole units, idle devices constant) as 2h blocks with
// Prometheus' block writer, uploads RF copies of each into a filesystem
// bucket as that many ingesters would ship them, starts strata -target=all
// on that bucket and has its compactor merge them (2h, 12h, 24h), then
// reports bucket bytes before and after, bytes per sample (two data sets: a
// 15s one for bytes per sample, a 7-day one to query) and the latency of two
// 7-day range queries, each cold (a fresh process, the store-gateway's local
// files deleted) and warm, with the store-gateway's cache hit rates. Raw
// queried samples of a few series are compared with the generated ones.
//
// -mode=rules measures recording-rule evaluation: -series (the standard
// data set, each series labelled bench_tenant) spread over -rules.tenants
// tenants, pushed with -rules.history of past samples and then one sample
// per series every -interval in real time; -rules.count recording rules
// (typical rate/avg_over_time/quantile aggregations over the data's
// families, each selecting its tenant's bench_tenant) in groups at
// -rules.interval, uploaded per tenant through strata's
// /config/v1/rules, and for Prometheus every tenant's groups in one rule
// file over the same series received by remote-write. After -rules.warmup
// it reads the rule self-metrics for -rules.duration: evaluations/s,
// failures, missed iterations, each group's start delay behind its
// schedule (from its last-evaluation timestamps), CPU per evaluated rule
// and peak RSS, side by side.
//
// Flow (single, cluster, noisy): prebuilt request bodies --8 senders, snappy+protobuf--> /api/v1/push
// (Strata, or its distributors) or /api/v1/write (Prometheus); /proc of each
// server process --> CPU and RSS; an ingester's /metrics --> its active
// series; /api/v1/query_range --> query latency.
// Owns: the workload (series, labels, timestamps), the measurement, the report.
// Does not: judge the figures (no thresholds, except -mode=noisy's verdict
// lines) or run two measured servers or clusters at a time.
//
// -mode=backfill measures strata backfill: 12 2h blocks of -series series
// made with Prometheus' TSDB, uploaded by the built binary (a subprocess)
// into a fresh strata -target=all with its filesystem bucket, then with a
// local S3 server (versitygw) when installed; it prints wall time, MB/s,
// samples/s, CPU per million samples of server and client, and the
// server's peak RSS.
//
// Run: go build -o bin/strata ./cmd/strata && go run ./cmd/strata-bench -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=cluster -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=noisy -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=longterm -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=rules -strata.bin=bin/strata
// and: go run ./cmd/strata-bench -mode=backfill -strata.bin=bin/strata
package main
