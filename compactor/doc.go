// Package compactor shrinks each tenant's blocks in object storage and
// enforces its retention.
//
// Flow: ingesters ship 2h blocks (RF copies of each range) --> bucket -->
// compactor (-target=compactor; tenants sharded across compactors by the
// "compactor" ring, one owner each) --> per owned tenant: update the bucket
// index; merge the RF copies of each 2h range into one block (vertical
// compaction, replicas' identical samples deduplicated); then merge 2h
// blocks into 12h and 12h into 24h blocks once their range is complete;
// mark blocks past the tenant's retention; delete blocks whose deletion mark
// is older than -compactor.deletion-delay and stale partial uploads; write
// the bucket index --> queriers and store-gateways read it.
//
// Owns: the compaction plan, the local work directory (-compactor.data-dir,
// emptied after each group), deletion and no-compact marks it writes, the
// tenant's bucket-index.json.gz.
// Does not: serve queries, or decide what a reader still reads (package
// bucketindex says when readers drop a marked block).
//
// A block that cannot be downloaded, opened or read is given a no-compact
// mark, counted in strata_compactor_blocks_marked_no_compact_total{reason}
// and logged with tenant, block and error; the run goes on with the other
// groups and the block stays queryable as far as it is readable.
package compactor
