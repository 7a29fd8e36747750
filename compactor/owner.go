package compactor

import (
	"github.com/strata-metrics/strata/ring"
)

// ownedTenants returns the tenants this compactor owns: those whose token
// (ring.StringToken of the tenant id) has this instance as its one owner
// among the healthy ACTIVE members. A member that stops heartbeating owns
// nothing once its heartbeat times out: its tenants pass to the next
// member clockwise, with no one to forget it from the ring first. Two
// compactors may briefly both own a tenant while their views of the ring
// differ; that costs work, not data: each writes a complete block,
// overlaps are merged by a later run, and the index is rebuilt from a full
// listing.
func (c *Compactor) ownedTenants(tenants []string) []string {
	if c.ring == nil {
		return tenants
	}
	snap := ring.NewSnapshot(c.ring.Index(), ring.Config{ReplicationFactor: 1, HeartbeatTimeout: c.hbTO}, c.now())
	var out []string
	for _, t := range tenants {
		if snap.OwnsHealthy(c.id, ring.StringToken(t), ring.Write) {
			out = append(out, t)
		}
	}
	return out
}
