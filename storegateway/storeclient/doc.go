// Package storeclient holds the rule the querier and the store-gateways
// share for which store-gateways own a block: the block → store-gateway
// sharding (Sharder) over the store-gateway ring.
//
// Flow: store-gateways register in their ring --> a Sharder over it says,
// per block, its replicas (the querier asks them, querier/storequery) and
// whether an instance owns it (a store-gateway loads it).
// Owns: BlockToken (never change it) and Snapshot.
// Does not: talk to store-gateways (querier/storequery does) or list blocks
// (bucketindex does).
package storeclient
