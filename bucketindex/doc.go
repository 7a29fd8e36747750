// Package bucketindex keeps, per tenant, the list of the tenant's blocks in
// object storage: <tenant>/bucket-index.json.gz, so that no query lists the
// bucket.
//
// Flow: ingesters ship blocks --> bucket <-- the compactor runs an Updater: a
// full listing of the tenant, meta.json read only for blocks new since the
// previous index --> bucket-index.json.gz --> a Loader in each querier and
// store-gateway caches it per tenant, refreshes it in the background and
// answers "which blocks cover [mint, maxt]". Ingesters' shippers add each
// block they upload to the index at once (AddBlocks; add.go says how the
// two writers keep each other's blocks). A shipper creates a tenant's first
// index itself; it never moves UpdatedAt, which says when the compactor
// last listed the tenant, so a tenant whose compactor is down past
// -blocks-storage.bucket-index.max-stale-period gets the stale-index error
// on reads of the store range, as any tenant then does.
//
// Owns: the index format (gzipped JSON, version 1), its encoding and
// decoding, the Updater, AddBlocks and the Loader, and BlockLister, how
// readers ask which blocks cover a range (IndexLister over a Loader;
// BucketLister, listing the bucket, where no index is kept).
// Does not: delete or mark blocks (the compactor does, with package block),
// read block contents (store-gateways do).
//
// # Deletion marks: when readers stop reading a block
//
// The compactor replaces blocks A and B by C in this order: upload C
// (meta.json last), mark A and B for deletion at time m, write the index
// (C present, A and B marked at m), and delete A's and B's objects once m is
// older than -compactor.deletion-delay (D). Readers see a new index only
// after their next refresh, and a store-gateway serves C only after it
// loaded C; meanwhile queriers and store-gateways holding the previous index
// know only A and B. So:
//
//   - A reader keeps querying a marked block until its mark is older than
//     the grace G (-blocks-storage.bucket-index.ignore-deletion-marks-delay),
//     and drops it after: Index.Within(mint, maxt, now-G). Between m and
//     m+G a query may read both C and A, B: the same samples twice, which
//     the querier's merge deduplicates. No reader with the new index drops
//     A and B before every reader can find C.
//   - G must exceed the time a new block takes to reach every reader: the
//     compactor writes the index right after marking (seconds), readers
//     refresh every -blocks-storage.bucket-index.update-interval, and a
//     store-gateway loads C within its own sync interval.
//   - D must exceed G plus the oldest index a reader may still use
//     (-blocks-storage.bucket-index.max-stale-period: an older index is an
//     error, not used) plus the longest query: a reader holding an index
//     from just before m+G still reads A and B, whose objects must exist.
//
// With the defaults (G 1h, update interval 5m, max stale period 1h, D 12h)
// both hold with hours to spare. Thanos recommends G = D/2, the midpoint of
// the two bounds; Strata, like Mimir, takes a shorter G because every hour
// of G is an hour in which queries over a freshly compacted range read its
// data twice (four times for three replicas' blocks).
package bucketindex
