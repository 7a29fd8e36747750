package compactor

import (
	"cmp"
	"slices"
	"sort"

	"github.com/cespare/xxhash/v2"

	"github.com/strata-metrics/strata/ring"
)

// tenantToken is a tenant's token in the compactor ring: the 64-bit xxhash
// of its id folded to 32 bits by XOR of its halves.
func tenantToken(tenant string) uint32 {
	h := xxhash.Sum64String(tenant)
	return uint32(h) ^ uint32(h>>32)
}

// ownedTenants returns the tenants this compactor owns: those whose token
// is owned by this instance, counting only healthy ACTIVE members. A member
// that stops heartbeating owns nothing once its heartbeat times out: its
// tenants pass to the next member clockwise, with no one to forget it from
// the ring first. Two compactors may briefly both own a tenant while their
// views of the ring differ; that costs work, not data: each writes a
// complete block, overlaps are merged by a later run, and the index is
// rebuilt from a full listing.
func (c *Compactor) ownedTenants(tenants []string) []string {
	if c.ring == nil {
		return tenants
	}
	type tok struct {
		t  uint32
		id string
	}
	var toks []tok
	now := c.now()
	for _, in := range c.ring.Instances() {
		if !in.Healthy(ring.Write, c.hbTO, now) {
			continue
		}
		for _, t := range in.Tokens {
			toks = append(toks, tok{t, in.ID})
		}
	}
	if len(toks) == 0 {
		return nil
	}
	// A token two members claim belongs to the lower id, as in ring.Ring.
	slices.SortFunc(toks, func(a, b tok) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	var out []string
	for _, t := range tenants {
		h := tenantToken(t)
		i := sort.Search(len(toks), func(i int) bool { return toks[i].t >= h })
		if i == len(toks) {
			i = 0
		}
		if toks[i].id == c.id {
			out = append(out, t)
		}
	}
	return out
}
