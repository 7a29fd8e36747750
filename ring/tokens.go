package ring

import (
	"math/rand/v2"
	"slices"
	"sort"
)

// newTokens returns n tokens for instance self, sorted, that even out the
// ring: each one splits the largest range owned by whichever other instance
// owns the most, taking what self still lacks of a fair share spread over
// the tokens left to place. Purely random tokens leave shares ~9% apart at
// 128 tokens (max/min often over 1.3); this keeps them within a few percent
// as instances join one by one, and as instances that join at once settle
// (Lifecycler.settle: each places its tokens again around those registered
// before it). A +-10% jitter on each split keeps two instances joining at
// once on the same view from picking the same tokens. Ownership of a token
// is the range (previous token, token].
func (d *Desc) newTokens(self string, n int, rnd *rand.Rand) []uint32 {
	type tok struct {
		t     uint32
		owner string
	}
	var ring []tok
	for id, in := range d.Instances {
		if id == self || in.State == Left {
			continue
		}
		for _, t := range in.Tokens {
			ring = append(ring, tok{t, id})
		}
	}
	if len(ring) == 0 {
		// An empty ring: one token anywhere in each of n equal slots from a
		// random start. Anywhere, not at one offset for all: instances that
		// saw an empty ring at once then own shares close to even (their
		// tokens interleave afresh in each slot) rather than as far apart
		// as three random points on a circle.
		step := uint64(1<<32) / uint64(n)
		start := rnd.Uint64N(1 << 32)
		out := make([]uint32, 0, n)
		seen := map[uint32]bool{}
		for i := range n {
			t := uint32(start + uint64(i)*step + rnd.Uint64N(step))
			for seen[t] {
				t++
			}
			seen[t] = true
			out = append(out, t)
		}
		slices.Sort(out)
		return out
	}
	sort.Slice(ring, func(a, b int) bool { return ring[a].t < ring[b].t })
	owned := map[string]uint64{}
	span := func(i int) uint64 {
		if i == 0 {
			return uint64(ring[0].t) + (1<<32 - uint64(ring[len(ring)-1].t))
		}
		return uint64(ring[i].t - ring[i-1].t)
	}
	for i := range ring {
		owned[ring[i].owner] += span(i)
	}
	// A fair share once self has joined; each new token takes what self
	// still lacks of it, spread over the tokens left to place.
	target := uint64(1<<32) / uint64(len(owned)+1)
	out := make([]uint32, 0, n)
	for k := n; k > 0; k-- {
		// The richest other instance, ties broken by id for determinism.
		var rich string
		for id, o := range owned {
			if id != self && (rich == "" || o > owned[rich] || (o == owned[rich] && id < rich)) {
				rich = id
			}
		}
		best, bestSpan := -1, uint64(0)
		for i := range ring {
			if ring[i].owner == rich && span(i) > bestSpan {
				best, bestSpan = i, span(i)
			}
		}
		if bestSpan < 16 {
			break // no room left to split; cannot happen below ~1e8 tokens
		}
		var steal uint64
		if owned[self] < target {
			steal = (target - owned[self]) / uint64(k)
		}
		// Jitter of +-10% keeps simultaneous joiners apart.
		steal = steal*9/10 + rnd.Uint64N(steal/5+1)
		steal = max(bestSpan/8, min(steal, bestSpan*7/8))
		prev := uint64(ring[(best-1+len(ring))%len(ring)].t)
		t := uint32(prev + steal)
		owned[rich] -= steal
		owned[self] += steal
		at, _ := slices.BinarySearchFunc(ring, t, func(e tok, t uint32) int {
			switch {
			case e.t < t:
				return -1
			case e.t > t:
				return 1
			}
			return 0
		})
		ring = slices.Insert(ring, at, tok{t, self})
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// joinView is the part of the ring an instance self joining with new
// tokens places them around: every live instance that registered before it
// (RegisteredAt, then id, in one order every member agrees on), and those
// of settled (instances already ACTIVE or LEAVING when self registered:
// their tokens no longer move). Instances that join at the same moment,
// each on the view its member had, thus each end up placed around those
// before it, the first around the settled ring alone, whatever each saw
// first (Lifecycler.settle places them again as the view fills in). One
// that registers after self places its tokens around self's, so self does
// not move for it.
func (d *Desc) joinView(self Instance, settled map[string]bool) *Desc {
	v := &Desc{Instances: make(map[string]Instance, len(d.Instances))}
	for id, in := range d.Instances {
		if id == self.ID || in.State == Left {
			continue
		}
		later := in.RegisteredAt > self.RegisteredAt || (in.RegisteredAt == self.RegisteredAt && id > self.ID)
		if later && !settled[id] {
			continue
		}
		v.Instances[id] = in
	}
	return v
}

// tokensByID returns every instance's tokens, by id.
func (d *Desc) tokensByID() map[string][]uint32 {
	out := make(map[string][]uint32, len(d.Instances))
	for id, in := range d.Instances {
		out[id] = in.Tokens
	}
	return out
}
