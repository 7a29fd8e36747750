// Package shipper uploads the blocks of one tenant's TSDB to object
// storage, once each, and tells the TSDB which local blocks it may delete.
//
// Flow: ingester (tsdb cuts a block from the head) --Shipper.Sync-->
// bucket <tenant>/<ULID>/ (block.Upload: meta.json last) --> compactor,
// store-gateways; each block uploaded is added to <tenant>/bucket-index.json.gz
// at once (bucketindex.AddBlocks), for queriers. The ingester calls Sync
// every -ingester.ship-interval and hands BlocksToDelete to the TSDB's
// options.
// Owns: the shipped-state file <tsdb dir>/strata-shipped.json (the ULID and
// upload time of every shipped block still on disk, written atomically),
// retries (a block that failed to upload is tried again on the next Sync),
// and the rule that a local block is deleted only once it is uploaded and
// old enough.
// Does not: cut blocks (the TSDB does), schedule itself (the ingester
// does), or know the block layout in the bucket (package block does).
package shipper
