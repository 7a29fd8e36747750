// Package querier answers the Prometheus HTTP API with PromQL over every
// tenant's recent samples, fetched from the ingesters.
//
// Flow: Grafana --HTTP /api/v1/*--> querier --QueryStream/Series/Label*/
// Metadata/QueryExemplars--> every ingester of the ring's read set.
// Owns: the PromQL engine and its concurrency gate, the per-tenant query
// limits (limits.go: length, lookback, timeout, concurrent queries, series
// fetched per query), the per-tenant
// storage.Queryable that fans out to the ingesters (tolerating the failures
// the ring allows, reported as warnings), the merge that turns the RF copies
// of a series into one (identical chunks dropped, overlapping ones merged
// sample by sample without duplicates), and the handlers of the query,
// metadata and status routes (api*.go) with the querier's error classes,
// built on promapi's parameters, JSON and error codes.
// Does not: store anything, pick replicas (the ring does) or resolve tenants
// (tenant.Resolver does). Long-term storage joins as a second source beside
// the ingesters (see source in queryable.go).
package querier
