// Package frontend is the query-frontend: it sits in front of the queriers,
// splits long range queries into legs by a time interval, evaluates the
// legs in parallel and merges them, and keeps their results in a cache so
// that a dashboard refreshed again costs only the part not cached.
//
// Flow: Grafana --HTTP /api/v1/query_range--> frontend --legs, same API-->
// querier (over HTTP with -target=query-frontend, a handler call in
// process with -target=all); every other path of the Prometheus API passes
// through unchanged (-target=query-frontend), or is served by the querier
// directly (-target=all). Leg results --> results cache (embedded LRU or
// memcached) --> the next identical request.
// Owns: the split of a range query on its step's grid (split.go), the
// decoding and exact merge of the querier's matrix JSON (response.go), the
// results cache: keys, extents, freshness and which queries are safe to
// cache (cache.go), its two backends (cache_embedded.go,
// cache_memcached.go), and the per-tenant bound on legs in flight.
// Does not: evaluate PromQL or read storage (the querier does), shard
// queries by series or queue them per tenant (not built), check
// credentials (tenant.Resolver does, and the querier checks them again).
package frontend
