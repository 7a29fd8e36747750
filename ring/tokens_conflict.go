package ring

import (
	"math/rand/v2"
	"slices"
)

// Two instances joining at once on the same view of the ring may pick the
// same token. Merge keeps both claims (each entry has one writer); the
// conflict is settled the same way everywhere: the instance with the lower
// id keeps the token, and the other one's lifecycler gives it up and takes
// a new one (resolveTokenConflicts) on its next heartbeat.

// tokenConflicts returns self's tokens that a live instance with a lower id
// also claims, sorted.
func (d *Desc) tokenConflicts(self string) []uint32 {
	mine := d.Instances[self].Tokens
	var out []uint32
	for id, in := range d.Instances {
		if id >= self || in.State == Left {
			continue
		}
		for _, t := range in.Tokens {
			if _, ok := slices.BinarySearch(mine, t); ok {
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// resolveTokenConflicts gives up self's contested tokens and takes as many
// random tokens no live instance holds; it returns how many it replaced.
// Few tokens are ever contested, so random replacements keep the balance.
func (d *Desc) resolveTokenConflicts(self string, rnd *rand.Rand) int {
	lost := d.tokenConflicts(self)
	if len(lost) == 0 {
		return 0
	}
	taken := map[uint32]bool{}
	for _, in := range d.Instances {
		if in.State == Left {
			continue
		}
		for _, t := range in.Tokens {
			taken[t] = true
		}
	}
	in := d.Instances[self]
	tokens := make([]uint32, 0, len(in.Tokens))
	for _, t := range in.Tokens {
		if _, ok := slices.BinarySearch(lost, t); !ok {
			tokens = append(tokens, t)
		}
	}
	for range lost {
		t := rnd.Uint32()
		for taken[t] {
			t = rnd.Uint32()
		}
		taken[t] = true
		tokens = append(tokens, t)
	}
	slices.Sort(tokens)
	in.Tokens = tokens
	d.Instances[self] = in
	return len(lost)
}
