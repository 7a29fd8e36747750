// Package ingester keeps each tenant's recent samples in memory and on local disk.
//
// Flow: distributor --Push--> ingester --QueryStream/Series/Label*--> querier;
// blocks cut every 2h by the ingester's compaction loop (compact.go; the
// TSDBs' own compaction is off), or whole once a tenant is idle for
// -blocks-storage.tsdb.head-compaction-idle-timeout (idle.go) --> object
// storage (ship.go, through shipper/, which also adds them to the tenant's
// bucket index).
// Owns: one Prometheus TSDB per tenant under <data.dir>/tsdb/<tenant>/ (head
// chunks, WAL, out-of-order window, 2h blocks kept for the local retention),
// the in-memory metric metadata of each tenant, the per-tenant series limits
// (push_limits.go: series counted per tenant and metric name through the
// TSDB's SeriesLifecycleCallback, new series over the limit refused as bad
// input), the disk's free-space reserve (disk.go: pushes refused below
// -ingester.min-free-disk-bytes), the failing and reopening of a tenant
// whose WAL write failed or whose TSDB did not open (wal_failure.go,
// tenant_recover.go, wal_repair.go: a push is acknowledged only if no
// failed WAL write precedes it) and the gRPC service
// ingesterpb.IngesterServer over them, the order of a tenant's pushes that
// touch a common series (push_order.go: the later one appends after the
// earlier one commits, so the WAL holds them in order), the idle-head cuts
// (idle.go) and the shipping of each tenant's cut blocks to the bucket
// (ship.go).
// Does not: validate series or apply rate limits (the distributor did), pick
// replicas (the ring does) or evaluate PromQL (the querier does).
package ingester
