package ring

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/strata-metrics/strata/gossip"
)

// Gossip keys of the rings. Every process registers both (NewGossipStore),
// whatever it runs, so that it relays and repairs both.
const (
	IngesterRingKey    = "ingester-ring"
	DistributorRingKey = "distributor-ring"
)

// GossipStore is a Store over one key of a gossip KV: the ring of a
// cluster. Every change, local or gossiped, publishes a new *Desc, so a
// Ring rebuilds its index exactly when the state changed.
type GossipStore struct {
	kv    *gossip.KV
	key   string
	now   func() time.Time
	empty *Desc
}

var _ Store = (*GossipStore)(nil)

// NewGossipStore registers key in kv (before kv.Run) and returns its Store.
// now is the clock that stamps tombstones (time.Now in production).
func NewGossipStore(kv *gossip.KV, key string, now func() time.Time) (*GossipStore, error) {
	if err := kv.RegisterKey(key, DescCodec{}); err != nil {
		return nil, fmt.Errorf("ring store: %w", err)
	}
	return &GossipStore{kv: kv, key: key, now: now, empty: NewDesc()}, nil
}

// Get implements Store. The Desc holds LEFT tombstones too; Ring skips them.
func (s *GossipStore) Get() *Desc {
	if d, ok := s.kv.Get(s.key).(*Desc); ok {
		return d
	}
	return s.empty
}

// Update implements Store: f gets a private copy of the current state; what
// it changed is merged and gossiped. Every entry f changed gets a version
// newer than the current one, so a local write always wins; an instance f
// deleted becomes a LEFT tombstone (forgetting it), so gossip does not bring
// it back. f may run more than once when gossip changes the state meanwhile.
func (s *GossipStore) Update(ctx context.Context, f func(*Desc) bool) error {
	return s.kv.CAS(ctx, s.key, func(cur gossip.Mergeable) (gossip.Mergeable, bool, error) {
		base, ok := cur.(*Desc)
		if !ok {
			base = s.empty
		}
		d := base.Clone()
		if !f(d) {
			return nil, false, nil
		}
		if delta := changes(base, d, s.now().UnixMilli()); delta != nil {
			return delta, true, nil
		}
		return nil, false, nil
	})
}

// changes returns the entries of next that differ from base, each versioned
// past base's, with deleted instances as LEFT tombstones; nil when none.
func changes(base, next *Desc, nowMs int64) *Desc {
	var delta *Desc
	add := func(id string, in Instance) {
		if delta == nil {
			delta = NewDesc()
		}
		in.ID = id
		delta.Instances[id] = in
	}
	for id, in := range next.Instances {
		old, ok := base.Instances[id]
		if ok && equalInstances(&old, &in) {
			continue
		}
		if ok {
			in.Heartbeat = max(in.Heartbeat, old.Heartbeat+1)
		}
		add(id, in)
	}
	for id, old := range base.Instances {
		if _, ok := next.Instances[id]; ok || old.State == Left {
			continue
		}
		tomb := old
		tomb.State, tomb.Tokens, tomb.Heartbeat = Left, nil, max(nowMs, old.Heartbeat+1)
		add(id, tomb)
	}
	return delta
}

func equalInstances(a, b *Instance) bool {
	return a.ID == b.ID && a.Addr == b.Addr && a.Zone == b.Zone && a.State == b.State &&
		a.Heartbeat == b.Heartbeat && a.RegisteredAt == b.RegisteredAt && slices.Equal(a.Tokens, b.Tokens)
}
