package ring

import (
	"cmp"
	"slices"
	"strings"
)

// Index is one state of a ring made ready for lookups: its instances (LEFT
// ones excluded) sorted by id, and every token, sorted, with the instance
// that owns it. Ring.Index builds it once per state; it is never modified
// after, so every lookup over that state (the distributor's replication
// sets, block sharding, tenant ownership) shares it without locks.
type Index struct {
	seen      *Desc      // the state indexed; nil for NewIndex
	instances []Instance // sorted by id
	tokens    []uint32   // sorted
	owners    []int32    // owners[i] indexes instances for tokens[i]
	zone      []int32    // zone[i] numbers instances[i].Zone from 0
	zones     int        // distinct zones
}

var emptyIndex = &Index{}

// NewIndex indexes a fixed membership: a ring read from elsewhere than a
// Store, or one made up in a test. Instances in state LEFT are left out.
func NewIndex(instances []Instance) *Index {
	live := make([]Instance, 0, len(instances))
	for _, in := range instances {
		if in.State != Left {
			live = append(live, in)
		}
	}
	slices.SortFunc(live, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return indexInstances(live, nil, nil)
}

// buildIndex indexes d. Gossip publishes a new *Desc for every heartbeat,
// so when the members and their tokens are those of prev, prev's token
// arrays are reused and only the instances (states, heartbeats) are new.
func buildIndex(d *Desc, prev *Index) *Index {
	ids := make([]string, 0, len(d.Instances))
	for id, in := range d.Instances {
		if in.State != Left {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	instances := make([]Instance, len(ids))
	for i, id := range ids {
		instances[i] = d.Instances[id]
	}
	return indexInstances(instances, d, prev)
}

// indexInstances indexes instances, sorted by id, reusing prev's token
// arrays when the members and their tokens are the same.
func indexInstances(instances []Instance, seen *Desc, prev *Index) *Index {
	ix := &Index{seen: seen, instances: instances, zone: make([]int32, len(instances))}
	var zoneNames []string
	n := 0
	sameTokens := prev != nil && len(instances) == len(prev.instances)
	for i := range instances {
		in := &instances[i]
		z := slices.Index(zoneNames, in.Zone)
		if z < 0 {
			z = len(zoneNames)
			zoneNames = append(zoneNames, in.Zone)
		}
		ix.zone[i] = int32(z)
		n += len(in.Tokens)
		if sameTokens {
			p := &prev.instances[i]
			sameTokens = p.ID == in.ID && slices.Equal(p.Tokens, in.Tokens)
		}
	}
	ix.zones = len(zoneNames)
	if sameTokens {
		ix.tokens, ix.owners = prev.tokens, prev.owners
		return ix
	}
	type entry struct {
		token uint32
		owner int32
	}
	entries := make([]entry, 0, n)
	for i := range instances {
		for _, t := range instances[i].Tokens {
			entries = append(entries, entry{t, int32(i)})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(a.token, b.token); c != 0 {
			return c
		}
		// A token two instances claim (they joined at once) belongs to the
		// lower id on every member, until the other one's lifecycler gives
		// it up; instances are sorted by id, so owner order is id order.
		return cmp.Compare(a.owner, b.owner)
	})
	ix.tokens = make([]uint32, len(entries))
	ix.owners = make([]int32, len(entries))
	for i, e := range entries {
		ix.tokens[i], ix.owners[i] = e.token, e.owner
	}
	return ix
}

// Instances returns every instance, sorted by id. The slice is the index's
// own: read it, never modify it.
func (ix *Index) Instances() []Instance { return ix.instances }

// Instance returns the instance with id, if it is in the ring (in any
// state but LEFT).
func (ix *Index) Instance(id string) (Instance, bool) {
	if i := ix.find(id); i >= 0 {
		return ix.instances[i], true
	}
	return Instance{}, false
}

// find returns the position of instance id in ix.instances, or -1.
func (ix *Index) find(id string) int32 {
	i, ok := slices.BinarySearchFunc(ix.instances, id, func(in Instance, id string) int { return strings.Compare(in.ID, id) })
	if !ok {
		return -1
	}
	return int32(i)
}

// maxOwners is how many owners a token can have: one per instance, or one
// per zone with zone awareness.
func (ix *Index) maxOwners(zoneAware bool) int {
	if zoneAware {
		return ix.zones
	}
	return len(ix.instances)
}

// walkRule says which instances a walk takes, and which of them count
// towards the owners it wants.
type walkRule uint8

const (
	// placement takes and counts every instance, healthy or not: where a
	// key's data lives.
	placement walkRule = iota
	// healthyOnly passes over the instances not healthy for the operation
	// as if they had no tokens: their keys go to the next ones clockwise.
	healthyOnly
	// writeSet takes every instance but does not count a JOINING or
	// LEAVING one: a write goes one instance further for each, so that the
	// key keeps its number of writable copies.
	writeSet
)

// walk appends to dst the owners of token, primary first, as positions in
// ix.instances: the first n distinct instances clockwise from the token
// (in distinct zones when zoneAware) that rule counts, with those rule
// takes without counting in between. It is the one lookup every ring
// question goes through; op and cutoff matter to healthyOnly alone.
func (ix *Index) walk(token uint32, n int, zoneAware bool, rule walkRule, op Operation, cutoff int64, dst []int32) []int32 {
	tokens, owners := ix.tokens, ix.owners
	if len(tokens) == 0 {
		return dst
	}
	first := len(dst)
	limit := ix.maxOwners(zoneAware)
	var zoneBuf [16]int32
	zonesUsed := zoneBuf[:0]
	counted := 0
	i, _ := slices.BinarySearch(tokens, token)
	for range len(tokens) {
		if counted >= n || len(dst)-first >= limit {
			break
		}
		if i == len(tokens) {
			i = 0 // past the last token the ring wraps to the first
		}
		o := owners[i]
		i++
		if slices.Contains(dst[first:], o) {
			continue
		}
		if zoneAware && slices.Contains(zonesUsed, ix.zone[o]) {
			continue
		}
		switch in := &ix.instances[o]; rule {
		case healthyOnly:
			if !in.healthyAt(op, cutoff) {
				continue
			}
			counted++
		case writeSet:
			if in.State != Joining && in.State != Leaving {
				counted++
			}
		default:
			counted++
		}
		dst = append(dst, o)
		if zoneAware {
			zonesUsed = append(zonesUsed, ix.zone[o])
		}
	}
	return dst
}
