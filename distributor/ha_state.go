package distributor

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/strata-metrics/strata/gossip"
)

// HATrackerKey is the gossip key of the HA-pair election state. Every
// process registers it (RegisterHATrackerKey), whatever it runs, so that
// it relays and repairs the state like the rings'.
const HATrackerKey = "ha-tracker"

// RegisterHATrackerKey registers HATrackerKey and its codec in kv, before
// kv.Run.
func RegisterHATrackerKey(kv *gossip.KV) error {
	if err := kv.RegisterKey(HATrackerKey, HACodec{}); err != nil {
		return fmt.Errorf("ha tracker: %w", err)
	}
	return nil
}

// HAReplica is the election of one HA cluster of one tenant.
type HAReplica struct {
	// Replica is the elected replica: the value of its replica label.
	Replica string
	// ReceivedAt is when a distributor last saw a request of Replica and
	// wrote it here (Unix ms); refreshed every update timeout at most, so
	// it lags the last request by up to that much. Also the entry's
	// version: the newest write wins.
	ReceivedAt int64
	// ElectedAt is when Replica was elected (Unix ms).
	ElectedAt int64
}

// compareHAReplicas orders two entries of one cluster: the later
// ReceivedAt first, then the later election, then the replica name, so
// that every member picks the same entry.
func compareHAReplicas(a, b *HAReplica) int {
	if c := cmp.Compare(a.ReceivedAt, b.ReceivedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(a.ElectedAt, b.ElectedAt); c != 0 {
		return c
	}
	return strings.Compare(a.Replica, b.Replica)
}

// HAState is the HA-pair election state every distributor shares through
// gossip: tenant -> cluster -> elected replica. As a CRDT each entry is a
// last-writer-wins register ordered by compareHAReplicas (a total order,
// so merge is a join: commutative, associative, idempotent). A value is
// immutable once handed to the KV; a change makes a new one, copying the
// outer map and the changed tenants' maps only.
type HAState struct {
	Tenants map[string]map[string]HAReplica
}

var (
	_ gossip.Mergeable  = (*HAState)(nil)
	_ gossip.Superseder = (*HAState)(nil)
)

// get returns the entry of (tenant, cluster); it does not allocate.
func (s *HAState) get(tenant, cluster string) (HAReplica, bool) {
	if s == nil {
		return HAReplica{}, false
	}
	r, ok := s.Tenants[tenant][cluster]
	return r, ok
}

// clusters returns how many clusters of tenant s tracks.
func (s *HAState) clusters(tenant string) int {
	if s == nil {
		return 0
	}
	return len(s.Tenants[tenant])
}

// entries returns how many clusters s tracks, over all tenants.
func (s *HAState) entries() int {
	n := 0
	if s != nil {
		for _, cs := range s.Tenants {
			n += len(cs)
		}
	}
	return n
}

// singleHA returns a state of one entry.
func singleHA(tenant, cluster string, r HAReplica) *HAState {
	return &HAState{Tenants: map[string]map[string]HAReplica{tenant: {cluster: r}}}
}

// Merge implements gossip.Mergeable: per (tenant, cluster), the greater
// entry wins.
func (s *HAState) Merge(other gossip.Mergeable) (merged, delta gossip.Mergeable, err error) {
	o, ok := other.(*HAState)
	if !ok {
		return nil, nil, fmt.Errorf("merge ha tracker state: got %T, want *distributor.HAState", other)
	}
	var dl *HAState
	for tenant, cs := range o.Tenants {
		mine := s.Tenants[tenant]
		for cluster, r := range cs {
			if cur, ok := mine[cluster]; ok && compareHAReplicas(&r, &cur) <= 0 {
				continue
			}
			if dl == nil {
				dl = &HAState{Tenants: map[string]map[string]HAReplica{}}
			}
			if dl.Tenants[tenant] == nil {
				dl.Tenants[tenant] = map[string]HAReplica{}
			}
			dl.Tenants[tenant][cluster] = r
		}
	}
	if dl == nil {
		return s, nil, nil
	}
	m := &HAState{Tenants: maps.Clone(s.Tenants)}
	if m.Tenants == nil {
		m.Tenants = make(map[string]map[string]HAReplica, len(dl.Tenants))
	}
	for tenant, cs := range dl.Tenants {
		nc := maps.Clone(m.Tenants[tenant])
		if nc == nil {
			nc = make(map[string]HAReplica, len(cs))
		}
		maps.Copy(nc, cs)
		m.Tenants[tenant] = nc
	}
	return m, dl, nil
}

// Compact implements gossip.Mergeable: it drops the entries whose elected
// replica was last seen before before (clusters silent that long, whose
// next request starts a new election). It commutes with Merge because
// ReceivedAt orders entries first.
func (s *HAState) Compact(before time.Time) (gossip.Mergeable, int) {
	limit := before.UnixMilli()
	n := 0
	for _, cs := range s.Tenants {
		for _, r := range cs {
			if r.ReceivedAt < limit {
				n++
			}
		}
	}
	if n == 0 {
		return s, 0
	}
	c := &HAState{Tenants: make(map[string]map[string]HAReplica, len(s.Tenants))}
	for tenant, cs := range s.Tenants {
		var kept map[string]HAReplica
		for cluster, r := range cs {
			if r.ReceivedAt < limit {
				continue
			}
			if kept == nil {
				kept = make(map[string]HAReplica, len(cs))
			}
			kept[cluster] = r
		}
		if kept != nil {
			c.Tenants[tenant] = kept
		}
	}
	return c, n
}

// Supersedes implements gossip.Superseder: s makes older redundant when it
// holds an entry at least as great for every entry of older (a newer
// refresh of a cluster replaces a queued older one).
func (s *HAState) Supersedes(older gossip.Mergeable) bool {
	o, ok := older.(*HAState)
	if !ok {
		return false
	}
	for tenant, cs := range o.Tenants {
		mine := s.Tenants[tenant]
		for cluster, r := range cs {
			cur, ok := mine[cluster]
			if !ok || compareHAReplicas(&cur, &r) < 0 {
				return false
			}
		}
	}
	return true
}

// HACodec encodes HAState for gossip, in protobuf wire format written with
// protowire:
//
//	message HAState   { repeated HAReplica entries = 1; }
//	message HAReplica {
//	  string tenant = 1; string cluster = 2; string replica = 3;
//	  int64 received_at_ms = 4; int64 elected_at_ms = 5;
//	}
//
// Unknown fields are skipped, so a later version may add some.
type HACodec struct{}

var _ gossip.Codec = HACodec{}

// ID implements gossip.Codec.
func (HACodec) ID() string { return "distributor.HAState/1" }

// Encode implements gossip.Codec; entries are sorted by tenant and
// cluster, so equal states encode to equal bytes.
func (HACodec) Encode(v gossip.Mergeable) ([]byte, error) {
	s, ok := v.(*HAState)
	if !ok {
		return nil, fmt.Errorf("encode ha tracker state: got %T, want *distributor.HAState", v)
	}
	return appendHAState(nil, s), nil
}

// Decode implements gossip.Codec.
func (HACodec) Decode(b []byte) (gossip.Mergeable, error) { return decodeHAState(b) }

func appendHAState(dst []byte, s *HAState) []byte {
	for _, tenant := range slices.Sorted(maps.Keys(s.Tenants)) {
		cs := s.Tenants[tenant]
		for _, cluster := range slices.Sorted(maps.Keys(cs)) {
			r := cs[cluster]
			dst = protowire.AppendTag(dst, 1, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(haEntrySize(tenant, cluster, &r)))
			dst = appendHAEntry(dst, tenant, cluster, &r)
		}
	}
	return dst
}

func haEntrySize(tenant, cluster string, r *HAReplica) int {
	n := 3 + protowire.SizeBytes(len(tenant)) + protowire.SizeBytes(len(cluster)) + protowire.SizeBytes(len(r.Replica))
	if r.ReceivedAt != 0 {
		n += 1 + protowire.SizeVarint(uint64(r.ReceivedAt))
	}
	if r.ElectedAt != 0 {
		n += 1 + protowire.SizeVarint(uint64(r.ElectedAt))
	}
	return n
}

func appendHAEntry(dst []byte, tenant, cluster string, r *HAReplica) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, tenant)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendString(dst, cluster)
	dst = protowire.AppendTag(dst, 3, protowire.BytesType)
	dst = protowire.AppendString(dst, r.Replica)
	if r.ReceivedAt != 0 {
		dst = protowire.AppendTag(dst, 4, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(r.ReceivedAt))
	}
	if r.ElectedAt != 0 {
		dst = protowire.AppendTag(dst, 5, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(r.ElectedAt))
	}
	return dst
}

// decodeHAState parses what appendHAState wrote; it copies what it keeps.
// An entry twice keeps the greater one; an entry without tenant, cluster
// or replica is an error.
func decodeHAState(b []byte) (*HAState, error) {
	s := &HAState{Tenants: map[string]map[string]HAReplica{}}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("decode ha tracker state: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, fmt.Errorf("decode ha tracker state field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("decode ha tracker entry: %w", protowire.ParseError(n))
		}
		b = b[n:]
		tenant, cluster, r, err := decodeHAEntry(v)
		if err != nil {
			return nil, err
		}
		cs := s.Tenants[tenant]
		if cs == nil {
			cs = map[string]HAReplica{}
			s.Tenants[tenant] = cs
		}
		if cur, ok := cs[cluster]; !ok || compareHAReplicas(&r, &cur) > 0 {
			cs[cluster] = r
		}
	}
	return s, nil
}

func decodeHAEntry(b []byte) (tenant, cluster string, r HAReplica, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", r, fmt.Errorf("decode ha tracker entry: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && num >= 1 && num <= 3:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return "", "", r, fmt.Errorf("decode ha tracker entry field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 1:
				tenant = string(v)
			case 2:
				cluster = string(v)
			case 3:
				r.Replica = string(v)
			}
		case typ == protowire.VarintType && (num == 4 || num == 5):
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return "", "", r, fmt.Errorf("decode ha tracker entry field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num == 4 {
				r.ReceivedAt = int64(x)
			} else {
				r.ElectedAt = int64(x)
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", "", r, fmt.Errorf("decode ha tracker entry field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if tenant == "" || cluster == "" || r.Replica == "" {
		return "", "", r, errors.New("decode ha tracker entry: empty tenant, cluster or replica")
	}
	return tenant, cluster, r, nil
}
