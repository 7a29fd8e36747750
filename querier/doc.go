// Package querier answers the Prometheus HTTP API with PromQL over every
// tenant's samples, fetched from the ingesters (recent) and the
// store-gateways (long-term blocks).
//
// Flow: Grafana --HTTP /api/v1/*--> querier --QueryStream/Series/Label*/
// Metadata/QueryExemplars--> every ingester of the ring's read set, and
// --Series/Label*--> the store-gateways owning the blocks of the range
// (querier/storequery picks them and retries).
// Owns: the PromQL engine and its concurrency gate, the per-tenant query
// limits (limits.go: length, lookback, timeout, concurrent queries, series
// fetched per query), the per-tenant
// storage.Queryable that fans out to the ingesters (tolerating the failures
// the ring allows, reported as warnings, and canceling the stragglers after
// a grace once the answers hold every series) and the store-gateways, the one reader of chunks for
// ingesters' and store-gateways' answers (decode.go) and the one merge that
// turns every copy of a series, from replicas, blocks or both sources, into
// one (identical chunks dropped unread, overlapping ones merged sample by
// sample without duplicates), and the handlers of the query, metadata and
// status routes (api*.go) with the querier's error classes, built on
// promapi's parameters, JSON and error codes.
// Does not: store anything, pick replicas (the ring does), resolve tenants
// (tenant.Resolver does) or decide which store-gateway serves which block
// (querier/storequery does).
package querier
