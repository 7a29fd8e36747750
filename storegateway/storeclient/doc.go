// Package storeclient is the querier's side of long-term storage: it asks
// the store-gateways for the series, label names and label values of the
// blocks that cover a time range, from the owners ring.BlockSharder names.
//
// Flow: querier --Blocks--> bucket index; querier --Series(blocks)--> the
// store-gateways owning them (ring, replicated) --> merged series.
// Owns: the retry of blocks a store-gateway failed or did not serve on
// another replica (not of blocks found damaged: DataLoss), the skipping of
// a damaged ingester copy whose range other served copies cover by the
// write quorum (coveredByCopies), and the merge of the answers into one
// sorted list, chunks as stored.
// Does not: decide which store-gateways own a block (ring.BlockSharder
// does, for both sides), read the bucket index itself (a BlockLister does:
// IndexLister over bucketindex.Loader in production), evaluate PromQL or
// merge with the ingesters' answers (the querier does).
package storeclient
