// Package blockupload takes a tenant's TSDB blocks over HTTP into object
// storage: history brought in from a Prometheus server (strata backfill).
//
// Flow: strata backfill --POST start (meta.json) / files (index, chunks) /
// finish--> compactor (this handler) --> bucket <tenant>/<block>/ -->
// bucket index (AddBlocks) --> store-gateways and queriers read it.
//
// Owns: the upload's state in the bucket (<tenant>/<block>/uploading.json:
// the meta.json given at start and each file received, with its size and
// SHA-256), the checks of meta.json and file names at start and per file,
// and the verification at finish (the block downloaded into a bounded
// temporary directory and read whole with Prometheus' index and chunk
// readers) before meta.json is written, last, so that no partial block is
// ever visible; in memory, what requests are at work on each upload (the
// files being received, with their bytes reserved, and a finish verifying)
// so that they do not change a block under one another.
// Does not: decide who may upload (the tenant's compactor_block_upload_enabled
// override does), merge overlapping blocks (the compactor does) or delete
// abandoned uploads (the compactor deletes a block without meta.json after
// -compactor.partial-block-deletion-delay).
package blockupload
