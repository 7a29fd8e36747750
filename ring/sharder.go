package ring

import (
	"time"

	"github.com/oklog/ulid/v2"
)

// StoreGatewayRingKey is the gossip key of the store-gateway ring.
const StoreGatewayRingKey = "store-gateway"

// BlockToken is the ring token of a block: KeyToken of
// tenant + "/" + ULID.
//
// NEVER CHANGE IT once store-gateways serve a cluster: queriers and
// store-gateways of different versions would disagree on owners, and every
// block would move. TestBlockToken pins its output.
func BlockToken(tenant string, id ulid.ULID) uint32 {
	var buf [128]byte
	return KeyToken(append(append(append(buf[:0], tenant...), '/'), id.String()...))
}

// Indexer hands out the token index of a ring's current state: *Ring, or
// a fixed membership (NewIndex) in tests. It does no I/O and is
// goroutine-safe.
type Indexer interface {
	Index() *Index
}

// BlockSharder maps blocks to the store-gateways that own them.
// Store-gateways use it to know which blocks to keep, queriers to know whom
// to ask; both must see the same ring to agree, and a querier retries
// another replica while they do not. It is goroutine-safe.
//
// Unlike Ring.Get, a block's replicas are its Owners: the first RF
// instances clockwise whatever their health, with no quorum: one healthy
// replica is enough to read a block.
type BlockSharder struct {
	ring Indexer
	cfg  Config
	now  func() time.Time
}

// NewBlockSharder returns a BlockSharder over r with cfg's replication
// factor (the store-gateways' -store-gateway.replication-factor), heartbeat
// timeout and zone awareness. now is the clock (time.Now in production).
func NewBlockSharder(r Indexer, cfg Config, now func() time.Time) *BlockSharder {
	return &BlockSharder{ring: r, cfg: cfg, now: now}
}

// Snapshot returns the blocks' owners in the ring's current state.
func (s *BlockSharder) Snapshot() *BlockSnapshot {
	return &BlockSnapshot{snap: NewSnapshot(s.ring.Index(), s.cfg, s.now())}
}

// BlockSnapshot is the store-gateway ring as one lookup sees it. It is
// immutable.
type BlockSnapshot struct {
	snap *Snapshot
}

// Replicas appends to buf the store-gateways owning block id of tenant:
// the Owners of its BlockToken, healthy or not, primary first.
func (s *BlockSnapshot) Replicas(tenant string, id ulid.ULID, buf []Instance) []Instance {
	return s.snap.Owners(BlockToken(tenant, id), buf)
}

// Owns reports whether instance instanceID is one of the block's replicas.
func (s *BlockSnapshot) Owns(instanceID, tenant string, id ulid.ULID) bool {
	return s.snap.Owns(instanceID, BlockToken(tenant, id))
}

// Has reports whether instance id is in the ring (in any state but LEFT).
func (s *BlockSnapshot) Has(instanceID string) bool {
	_, ok := s.snap.Instance(instanceID)
	return ok
}

// Healthy reports whether in serves reads now: JOINING, ACTIVE or LEAVING,
// with a heartbeat within the timeout.
func (s *BlockSnapshot) Healthy(in *Instance) bool { return s.snap.Healthy(in, Read) }
