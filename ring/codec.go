package ring

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/strata-metrics/strata/gossip"
)

// DescCodec encodes the ring for gossip, in protobuf wire format written
// with protowire (no generated structs between Desc and its bytes):
//
//	message Desc     { repeated Instance instances = 1; }
//	message Instance {
//	  string id = 1; string addr = 2; string zone = 3; int32 state = 4;
//	  repeated fixed32 tokens = 5 [packed = true];   // sorted
//	  int64 heartbeat_ms = 6; int64 registered_at_ms = 7;
//	}
//
// Tokens are fixed32: random 32-bit values take 5 bytes as varints, 4 here.
// Unknown fields are skipped, so a later version may add some.
type DescCodec struct{}

var _ gossip.Codec = DescCodec{}

// ID implements gossip.Codec.
func (DescCodec) ID() string { return "ring.Desc/1" }

// Encode implements gossip.Codec.
func (DescCodec) Encode(v gossip.Mergeable) ([]byte, error) {
	d, ok := v.(*Desc)
	if !ok {
		return nil, fmt.Errorf("encode ring: got %T, want *ring.Desc", v)
	}
	return AppendDesc(nil, d), nil
}

// Decode implements gossip.Codec.
func (DescCodec) Decode(b []byte) (gossip.Mergeable, error) { return DecodeDesc(b) }

// AppendDesc appends d's encoding to dst, instances sorted by id.
func AppendDesc(dst []byte, d *Desc) []byte {
	ids := make([]string, 0, len(d.Instances))
	size := 0
	for id, in := range d.Instances {
		ids = append(ids, id)
		size += len(id) + len(in.Addr) + len(in.Zone) + 4*len(in.Tokens) + 48
	}
	slices.Sort(ids)
	dst = slices.Grow(dst, size)
	for _, id := range ids {
		in := d.Instances[id]
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(instanceSize(id, &in)))
		dst = appendInstance(dst, id, &in)
	}
	return dst
}

func instanceSize(id string, in *Instance) int {
	n := 1 + protowire.SizeBytes(len(id))
	if in.Addr != "" {
		n += 1 + protowire.SizeBytes(len(in.Addr))
	}
	if in.Zone != "" {
		n += 1 + protowire.SizeBytes(len(in.Zone))
	}
	if in.State != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(in.State)))
	}
	if len(in.Tokens) > 0 {
		n += 1 + protowire.SizeBytes(4*len(in.Tokens))
	}
	if in.Heartbeat != 0 {
		n += 1 + protowire.SizeVarint(uint64(in.Heartbeat))
	}
	if in.RegisteredAt != 0 {
		n += 1 + protowire.SizeVarint(uint64(in.RegisteredAt))
	}
	return n
}

func appendInstance(dst []byte, id string, in *Instance) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, id)
	if in.Addr != "" {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendString(dst, in.Addr)
	}
	if in.Zone != "" {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendString(dst, in.Zone)
	}
	if in.State != 0 {
		dst = protowire.AppendTag(dst, 4, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(in.State)))
	}
	if len(in.Tokens) > 0 {
		dst = protowire.AppendTag(dst, 5, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(4*len(in.Tokens)))
		for _, t := range in.Tokens {
			dst = protowire.AppendFixed32(dst, t)
		}
	}
	if in.Heartbeat != 0 {
		dst = protowire.AppendTag(dst, 6, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(in.Heartbeat))
	}
	if in.RegisteredAt != 0 {
		dst = protowire.AppendTag(dst, 7, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(in.RegisteredAt))
	}
	return dst
}

// DecodeDesc parses what AppendDesc wrote; it copies what it keeps. Tokens
// arriving unsorted are sorted and deduplicated; an instance twice keeps
// the newer entry; an instance without id is an error.
func DecodeDesc(b []byte) (*Desc, error) {
	d := NewDesc()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("decode ring: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, fmt.Errorf("decode ring field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("decode ring instance: %w", protowire.ParseError(n))
		}
		b = b[n:]
		in, err := decodeInstance(v)
		if err != nil {
			return nil, err
		}
		if cur, ok := d.Instances[in.ID]; !ok || compareInstances(&in, &cur) > 0 {
			d.Instances[in.ID] = in
		}
	}
	return d, nil
}

func decodeInstance(b []byte) (Instance, error) {
	var in Instance
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return in, fmt.Errorf("decode ring instance: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && num >= 1 && num <= 3:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return in, fmt.Errorf("decode ring instance field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 1:
				in.ID = string(v)
			case 2:
				in.Addr = string(v)
			case 3:
				in.Zone = string(v)
			}
		case typ == protowire.BytesType && num == 5:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || len(v)%4 != 0 {
				return in, errors.New("decode ring instance: malformed tokens")
			}
			b = b[n:]
			tokens := make([]uint32, 0, len(in.Tokens)+len(v)/4)
			tokens = append(tokens, in.Tokens...)
			for ; len(v) > 0; v = v[4:] {
				t, _ := protowire.ConsumeFixed32(v)
				tokens = append(tokens, t)
			}
			in.Tokens = tokens
		case typ == protowire.VarintType && (num == 4 || num == 6 || num == 7):
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return in, fmt.Errorf("decode ring instance field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 4:
				in.State = State(int32(x))
			case 6:
				in.Heartbeat = int64(x)
			case 7:
				in.RegisteredAt = int64(x)
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return in, fmt.Errorf("decode ring instance field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if in.ID == "" {
		return in, errors.New("decode ring instance: empty id")
	}
	if !slices.IsSorted(in.Tokens) {
		slices.Sort(in.Tokens)
	}
	in.Tokens = slices.Compact(in.Tokens)
	return in, nil
}
