// Package storegateway serves long-term blocks from object storage to
// queriers: -target=store-gateway.
//
// Flow: ingesters and the compactor upload blocks to the bucket; the
// querier names the blocks it wants and asks their owning store-gateways
// (a ring of its own, each block on -store-gateway.replication-factor of
// them) over gRPC (proto/storepb); a store-gateway reads the block's index
// and chunks and streams the chunks as stored.
// Owns: lazy loading of a block's index-header on its first query (built
// from range reads of the block's index into -store-gateway.data-dir,
// memory-mapped, closed when idle; the index object is never read whole),
// postings lists and series entries read by range, chunk range reads
// batched and cached in memory, postings and series-entry caches, the periodic
// sync of the blocks this instance owns (which decides the local files it
// keeps), tenant isolation: a request reads only under its tenant's
// prefix, and per-block failure reporting: a block that fails is reported
// on its own (block_errors; DataLoss for damaged bytes) while the
// request's other blocks are served.
// Does not: decide which blocks a query needs (the querier, from the bucket
// index), write to the bucket (ingesters and the compactor), or evaluate
// PromQL.
package storegateway
