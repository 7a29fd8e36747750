// Package gossip keeps state that every instance of a cluster shares, in
// agreement by gossip alone: a key-value store whose values are CRDTs,
// spread with github.com/hashicorp/memberlist.
//
// Flow: a writer's CAS merges its change locally and broadcasts only the
// change; every member merges what it hears and re-broadcasts only what was
// news to it; a periodic full-state push/pull between random pairs repairs
// whatever the broadcasts missed. The rings live here (ring.GossipStore),
// and so does the distributors' HA-pair election.
// Owns: the memberlist instance (bind, advertise, join and rejoin, cluster
// label, encryption keys and their rotation, leave), the wire envelope,
// tombstone expiry, GET /memberlist.
// Does not: know any value's meaning; a value type brings its own Merge
// (commutative, associative, idempotent) and Codec.
package gossip
