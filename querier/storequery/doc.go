// Package storequery is how the querier reaches long-term blocks: which
// store-gateways to ask for which blocks, and what to do when they fail.
//
// Flow: querier --Blocks--> bucket index (bucketindex.BlockLister); querier
// --Series/LabelNames/LabelValues(blocks)--> the store-gateways owning them
// (ring, replicated) --> one answer per store-gateway, for the querier to
// merge.
// Owns: the rounds that ask each block of one replica at a time, the retry
// of blocks a store-gateway failed or did not serve on another replica (not
// of blocks found damaged: DataLoss), the skipping of a damaged ingester
// copy whose range other served copies cover by the write quorum
// (coveredByCopies), UnavailableError, and the union of label answers.
// Does not: decode or merge series (package querier does, with the
// ingesters' answers, in one merge that drops duplicate chunks and
// samples), hold the block → store-gateway sharding rule (ring.BlockSharder)
// or evaluate PromQL.
package storequery
