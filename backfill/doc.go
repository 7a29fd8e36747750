// Package backfill is the client side of bringing history into Strata:
// strata backfill uploads a Prometheus TSDB directory's blocks, or blocks
// it builds from an OpenMetrics text file, to the block upload API.
//
// Flow: TSDB blocks on disk (or file.om --> BuildOpenMetrics --> blocks)
// --> Uploader (check, start, files, finish per block) --> HTTP --> the
// compactor's package blockupload --> bucket.
// Owns: the order of the upload, resuming it (the server says what it has;
// files of the same size and SHA-256 are not sent again), the progress
// shown, and the ULIDs of blocks built from OpenMetrics (derived from the
// file's content and the block's range, so that a second run resumes the
// first instead of uploading copies).
// Does not: check the blocks beyond reading their meta.json and tombstones
// (the server verifies them whole and says what is wrong).
package backfill
