package storeclient

import (
	"cmp"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/oklog/ulid/v2"

	"github.com/strata-metrics/strata/ring"
)

// RingKey is the gossip key of the store-gateway ring.
const RingKey = "store-gateway"

// Ring is what sharding needs from the store-gateway ring (*ring.Ring).
type Ring interface {
	// Instances returns a snapshot of every instance (LEFT ones excluded),
	// sorted by id. It does no I/O and is goroutine-safe.
	Instances() []ring.Instance
}

// BlockToken is the ring token of a block: the 64-bit xxhash of
// tenant + "/" + ULID, folded to 32 bits by XOR of its halves.
//
// NEVER CHANGE IT once store-gateways serve a cluster: queriers and
// store-gateways of different versions would disagree on owners, and every
// block would move. TestBlockToken pins its output.
func BlockToken(tenant string, id ulid.ULID) uint32 {
	var buf [128]byte
	key := append(append(append(buf[:0], tenant...), '/'), id.String()...)
	h := xxhash.Sum64(key)
	return uint32(h) ^ uint32(h>>32)
}

// Sharder maps blocks to the store-gateways that own them. Store-gateways
// use it to know which blocks to keep, queriers to know whom to ask; both
// must see the same ring to agree, and a querier retries another replica
// while they do not. It is goroutine-safe.
//
// Unlike ring.Ring.Get, a block's replicas are the first RF instances
// clockwise whatever their health, with no quorum: one healthy replica is
// enough to read a block.
type Sharder struct {
	ring    Ring
	rf      int
	timeout time.Duration
	zones   bool
	now     func() time.Time
	last    atomic.Pointer[Snapshot]
}

// NewSharder returns a Sharder over r with cfg's replication factor (the
// store-gateways' -store-gateway.replication-factor), heartbeat timeout
// and zone awareness. now is the clock (time.Now in production).
func NewSharder(r Ring, cfg ring.Config, now func() time.Time) *Sharder {
	return &Sharder{ring: r, rf: max(1, cfg.ReplicationFactor), timeout: cfg.HeartbeatTimeout, zones: cfg.ZoneAwarenessEnabled, now: now}
}

// ReplicationFactor is the number of store-gateways that own each block.
func (s *Sharder) ReplicationFactor() int { return s.rf }

// Snapshot is the ring as one lookup sees it. It is immutable.
type Snapshot struct {
	instances []ring.Instance
	tokens    []uint32 // sorted
	owners    []int32  // owners[i] indexes instances for tokens[i]
	zones     int
	rf        int
	zoneAware bool
	timeout   time.Duration
	now       time.Time
}

// Snapshot returns the ring's current state for lookups. The token index
// is rebuilt only when members or tokens changed since the last call.
func (s *Sharder) Snapshot() *Snapshot {
	instances := s.ring.Instances()
	prev := s.last.Load()
	snap := &Snapshot{instances: instances, rf: s.rf, zoneAware: s.zones, timeout: s.timeout, now: s.now()}
	if prev != nil && sameTokens(prev.instances, instances) {
		snap.tokens, snap.owners, snap.zones = prev.tokens, prev.owners, prev.zones
	} else {
		snap.index()
	}
	s.last.Store(snap)
	return snap
}

func sameTokens(a, b []ring.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Zone != b[i].Zone || !slices.Equal(a[i].Tokens, b[i].Tokens) {
			return false
		}
	}
	return true
}

func (s *Snapshot) index() {
	type entry struct {
		token uint32
		owner int32
	}
	var entries []entry
	zones := map[string]struct{}{}
	for i := range s.instances {
		zones[s.instances[i].Zone] = struct{}{}
		for _, t := range s.instances[i].Tokens {
			entries = append(entries, entry{t, int32(i)})
		}
	}
	// Ties (two instances claiming one token) go to the lower id, as in
	// ring.Ring; instances are sorted by id.
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(a.token, b.token); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	s.tokens = make([]uint32, len(entries))
	s.owners = make([]int32, len(entries))
	for i, e := range entries {
		s.tokens[i], s.owners[i] = e.token, e.owner
	}
	s.zones = len(zones)
}

// Replicas appends to buf the store-gateways owning block id of tenant:
// the first RF distinct instances clockwise from BlockToken (in distinct
// zones with zone awareness), healthy or not, primary first.
func (s *Snapshot) Replicas(tenant string, id ulid.ULID, buf []ring.Instance) []ring.Instance {
	buf = buf[:0]
	if len(s.tokens) == 0 {
		return buf
	}
	rf := min(s.rf, len(s.instances))
	if s.zoneAware {
		rf = min(rf, s.zones)
	}
	token := BlockToken(tenant, id)
	start := sort.Search(len(s.tokens), func(i int) bool { return s.tokens[i] >= token })
	var picked [16]int32
	idx := picked[:0]
	for i := 0; i < len(s.tokens) && len(idx) < rf; i++ {
		o := s.owners[(start+i)%len(s.tokens)]
		if slices.Contains(idx, o) {
			continue
		}
		in := &s.instances[o]
		if s.zoneAware && slices.ContainsFunc(buf, func(p ring.Instance) bool { return p.Zone == in.Zone }) {
			continue
		}
		idx = append(idx, o)
		buf = append(buf, *in)
	}
	return buf
}

// Owns reports whether instance id is one of the block's replicas.
func (s *Snapshot) Owns(instanceID, tenant string, id ulid.ULID) bool {
	var buf [8]ring.Instance
	for _, in := range s.Replicas(tenant, id, buf[:0]) {
		if in.ID == instanceID {
			return true
		}
	}
	return false
}

// Has reports whether instance id is in the ring (in any state but LEFT).
func (s *Snapshot) Has(instanceID string) bool {
	for i := range s.instances {
		if s.instances[i].ID == instanceID {
			return true
		}
	}
	return false
}

// Healthy reports whether in serves reads now: JOINING, ACTIVE or LEAVING,
// with a heartbeat within the timeout.
func (s *Snapshot) Healthy(in *ring.Instance) bool {
	return in.Healthy(ring.Read, s.timeout, s.now)
}
