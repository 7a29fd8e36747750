// Package block is the layout of a TSDB block in object storage, shared by
// everything on the long-term path: ingesters upload the blocks they cut
// (shipper), the compactor downloads, merges, re-uploads and deletes them,
// store-gateways and queriers read them.
//
// A block lives under its tenant's prefix as <tenant>/<ULID>/ with the files
// Prometheus writes (index, chunks/000001…) and meta.json, which is uploaded
// last: a block without meta.json is partial (an upload in progress or one
// that failed half way) and invisible to every reader. meta.json is
// Prometheus' own BlockMeta plus a "strata" section naming the tenant, the
// ingester that cut it and every file with its size, so a reader can check a
// download is complete without listing the bucket.
//
// Marks are small JSON objects next to the block: deletion-mark.json (the
// block is going away after a delay; readers skip it) and
// no-compact-mark.json (the compactor found it unreadable and leaves it).
package block
