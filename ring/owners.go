package ring

import (
	"time"

	"github.com/cespare/xxhash/v2"
)

// KeyToken is the token of key on a ring: the 64-bit xxhash of key folded
// to 32 bits by XOR of its halves. Series (distributor), blocks
// (BlockToken) and tenants (StringToken, in the compactor) all hash to the
// ring through it.
//
// NEVER CHANGE IT once a cluster holds data: every key would move to other
// owners. TestSeriesToken (distributor), TestBlockToken and
// TestTenantToken (compactor) pin its output.
func KeyToken(key []byte) uint32 { return fold(xxhash.Sum64(key)) }

// StringToken is KeyToken of a string key, such as a tenant id.
func StringToken(key string) uint32 { return fold(xxhash.Sum64String(key)) }

func fold(h uint64) uint32 { return uint32(h) ^ uint32(h>>32) }

// Snapshot is a ring as the lookups of one moment see it: one state's
// Index, the replication factor and zone awareness that place keys on it,
// and the time that decides health. It is immutable and goroutine-safe.
//
// The owners of a token are the first replication-factor distinct
// instances clockwise from it (in distinct zones with zone awareness),
// primary first. Owners and Owns place a key whatever the health of its
// owners (where a block is stored: its readers skip an unhealthy owner);
// HealthyOwners and OwnsHealthy count only the instances healthy for an
// operation, so that an unhealthy instance's keys pass to the next ones
// clockwise (who does a tenant's compaction).
type Snapshot struct {
	ix        *Index
	rf        int
	zoneAware bool
	cutoff    int64 // heartbeatCutoff at the snapshot's time
}

// NewSnapshot returns the lookups over ix with cfg's replication factor
// (at least 1), zone awareness and heartbeat timeout, at now.
func NewSnapshot(ix *Index, cfg Config, now time.Time) *Snapshot {
	return &Snapshot{
		ix: ix, rf: max(1, cfg.ReplicationFactor), zoneAware: cfg.ZoneAwarenessEnabled,
		cutoff: heartbeatCutoff(cfg.HeartbeatTimeout, now),
	}
}

// Snapshot returns the lookups over the current state with the ring's
// configuration, at the ring's clock's now.
func (r *Ring) Snapshot() *Snapshot { return NewSnapshot(r.Index(), r.cfg, r.now()) }

// Owners appends to buf the instances that own token, healthy or not.
func (s *Snapshot) Owners(token uint32, buf []Instance) []Instance {
	return s.appendOwners(token, placement, Read, buf)
}

// HealthyOwners appends to buf the instances that own token among those
// healthy for op.
func (s *Snapshot) HealthyOwners(token uint32, op Operation, buf []Instance) []Instance {
	return s.appendOwners(token, healthyOnly, op, buf)
}

func (s *Snapshot) appendOwners(token uint32, rule walkRule, op Operation, buf []Instance) []Instance {
	var pos [16]int32
	buf = buf[:0]
	for _, o := range s.ix.walk(token, s.rf, s.zoneAware, rule, op, s.cutoff, pos[:0]) {
		buf = append(buf, s.ix.instances[o])
	}
	return buf
}

// Owns reports whether instance instanceID is one of token's Owners.
func (s *Snapshot) Owns(instanceID string, token uint32) bool {
	return s.owns(instanceID, token, placement, Read)
}

// OwnsHealthy reports whether instance instanceID is one of token's
// HealthyOwners for op.
func (s *Snapshot) OwnsHealthy(instanceID string, token uint32, op Operation) bool {
	return s.owns(instanceID, token, healthyOnly, op)
}

func (s *Snapshot) owns(instanceID string, token uint32, rule walkRule, op Operation) bool {
	self := s.ix.find(instanceID)
	if self < 0 {
		return false
	}
	var pos [16]int32
	for _, o := range s.ix.walk(token, s.rf, s.zoneAware, rule, op, s.cutoff, pos[:0]) {
		if o == self {
			return true
		}
	}
	return false
}

// Instance returns the instance with id, if it is in the ring (in any
// state but LEFT).
func (s *Snapshot) Instance(id string) (Instance, bool) { return s.ix.Instance(id) }

// Healthy reports whether op may use in at the snapshot's time.
func (s *Snapshot) Healthy(in *Instance, op Operation) bool { return in.healthyAt(op, s.cutoff) }
