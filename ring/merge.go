package ring

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strata-metrics/strata/gossip"
)

// The ring as a CRDT. Each instance's entry is a last-writer-wins register
// ordered by Heartbeat, which doubles as the entry's version: every write
// stores max(now, previous+1) in Unix ms (GossipStore.Update sees to it), so
// versions only grow even when a clock steps back, and stay close to wall
// time so health checks keep working. Only an instance writes its own entry,
// except forgetting it, which writes a newer LEFT tombstone. Entries of
// equal version are ordered by their whole content (LEFT first), so merge
// is a join over a total order: commutative, associative and idempotent.
var (
	_ gossip.Mergeable  = (*Desc)(nil)
	_ gossip.Superseder = (*Desc)(nil)
)

// Merge implements gossip.Mergeable: per instance, the newer entry wins.
func (d *Desc) Merge(other gossip.Mergeable) (merged, delta gossip.Mergeable, err error) {
	o, ok := other.(*Desc)
	if !ok {
		return nil, nil, fmt.Errorf("merge ring: got %T, want *ring.Desc", other)
	}
	m, dl := d.merge(o)
	if dl == nil {
		return d, nil, nil
	}
	return m, dl, nil
}

// merge returns the join of d and o and the entries of o that changed d
// (nil delta and d itself when none). Neither is modified; token slices are
// shared, which is safe because nobody writes a published Desc's tokens.
func (d *Desc) merge(o *Desc) (merged, delta *Desc) {
	for id, in := range o.Instances {
		if cur, ok := d.Instances[id]; ok && compareInstances(&in, &cur) <= 0 {
			continue
		}
		if delta == nil {
			delta = &Desc{Instances: make(map[string]Instance, 1)}
		}
		delta.Instances[id] = in
	}
	if delta == nil {
		return d, nil
	}
	merged = &Desc{Instances: maps.Clone(d.Instances)}
	if merged.Instances == nil {
		merged.Instances = make(map[string]Instance, len(delta.Instances))
	}
	maps.Copy(merged.Instances, delta.Instances)
	return merged, delta
}

// compareInstances orders two entries of one instance: the newer version
// first, then LEFT over everything else, then the content, so that every
// member picks the same entry.
func compareInstances(a, b *Instance) int {
	if c := cmp.Compare(a.Heartbeat, b.Heartbeat); c != 0 {
		return c
	}
	// State values are ordered JOINING < ACTIVE < LEAVING < LEFT: a
	// tombstone wins a tie.
	if c := cmp.Compare(a.State, b.State); c != 0 {
		return c
	}
	if c := cmp.Compare(a.RegisteredAt, b.RegisteredAt); c != 0 {
		return c
	}
	if c := strings.Compare(a.Addr, b.Addr); c != 0 {
		return c
	}
	if c := strings.Compare(a.Zone, b.Zone); c != 0 {
		return c
	}
	if c := slices.Compare(a.Tokens, b.Tokens); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Compact implements gossip.Mergeable: it drops entries written before
// before, LEFT tombstones and silent instances alike. Dropping silent live
// entries too keeps every member's ring equal: each one drops them at the
// same age, and drops them again when a stale peer sends them.
func (d *Desc) Compact(before time.Time) (gossip.Mergeable, int) {
	limit := before.UnixMilli()
	n := 0
	for _, in := range d.Instances {
		if in.Heartbeat < limit {
			n++
		}
	}
	if n == 0 {
		return d, 0
	}
	c := &Desc{Instances: make(map[string]Instance, len(d.Instances)-n)}
	for id, in := range d.Instances {
		if in.Heartbeat >= limit {
			c.Instances[id] = in
		}
	}
	return c, n
}

// Supersedes implements gossip.Superseder: d makes older redundant when it
// holds an entry at least as new for every instance of older.
func (d *Desc) Supersedes(older gossip.Mergeable) bool {
	o, ok := older.(*Desc)
	if !ok || len(o.Instances) > len(d.Instances) {
		return false
	}
	for id, in := range o.Instances {
		cur, ok := d.Instances[id]
		if !ok || compareInstances(&cur, &in) < 0 {
			return false
		}
	}
	return true
}
