// Package ring decides which ingesters hold which series.
//
// Flow: the distributor hashes each series to a token and asks the ring for
// the replicas clockwise from it; the querier asks the ring for every healthy
// ingester; an ingester's Lifecycler announces it (tokens, state, heartbeat).
// Owns: the ring state (Desc: one Instance per member), token generation,
// replication-set lookup with zones and heartbeat health, and the Store seam
// the state lives behind (in memory for one process; gossiped by memberlist
// in a cluster).
// Does not: open connections (clientpool does) or move data.
package ring
