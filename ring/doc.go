// Package ring decides which instances own which keys: the ingesters of a
// series, the store-gateways of a block, the compactor of a tenant.
//
// Flow: the distributor hashes each series to a token (KeyToken) and asks
// the ring for the replicas clockwise from it (Ring.Get); the querier asks
// the ring for every healthy ingester; store-gateways and queriers agree on
// a block's owners through a BlockSharder, compactors on a tenant's through
// a Snapshot; every member's Lifecycler announces it (tokens, state,
// heartbeat).
// Owns: the ring state (Desc: one Instance per member), token generation
// (and its settling among instances that join at the same moment),
// the token of a key, the sorted token Index built once per state and the
// one clockwise walk every lookup goes through (zones, heartbeat health,
// replication sets), the status pages, and the Store seam the state lives
// behind (in memory for one process; gossiped by memberlist in a cluster).
// Does not: open connections (clientpool does) or move data.
package ring
