package gossip

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire format is protobuf, written with protowire so that no generated
// structs sit between the values and their bytes:
//
//	message KeyValue { string key = 1; string codec = 2; bytes value = 3; }
//	message State    { string cluster_label = 1; repeated KeyValue values = 2; }
//
// A broadcast (UDP, or TCP for large ones) is one KeyValue; a push/pull
// carries one State with every key. Each is prefixed by one byte of format
// version, so a later format can be told apart and dropped cleanly.
const wireVersion = 1

// maxStateBytes bounds a full state a peer may push: far above any real
// ring (100 instances x 128 tokens is ~60 KB), far below trouble.
const maxStateBytes = 32 << 20

var errWireVersion = errors.New("unknown gossip format version")

func appendKeyValue(dst []byte, key, codec string, value []byte) []byte {
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, key)
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendString(dst, codec)
	dst = protowire.AppendTag(dst, 3, protowire.BytesType)
	return protowire.AppendBytes(dst, value)
}

// encodeMessage returns a broadcast message carrying one key's value.
func encodeMessage(key, codec string, value []byte) []byte {
	dst := make([]byte, 0, 1+len(key)+len(codec)+len(value)+12)
	dst = append(dst, wireVersion)
	return appendKeyValue(dst, key, codec, value)
}

// decodeMessage parses a broadcast message; value aliases b.
func decodeMessage(b []byte) (key, codec string, value []byte, err error) {
	if len(b) == 0 || b[0] != wireVersion {
		return "", "", nil, errWireVersion
	}
	return parseKeyValue(b[1:])
}

func parseKeyValue(b []byte) (key, codec string, value []byte, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", nil, fmt.Errorf("parse key-value tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 3 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", "", nil, fmt.Errorf("parse key-value field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", "", nil, fmt.Errorf("parse key-value field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case 1:
			key = string(v)
		case 2:
			codec = string(v)
		case 3:
			value = v
		}
	}
	if key == "" {
		return "", "", nil, errors.New("key-value without key")
	}
	return key, codec, value, nil
}

// keyValue is one key of a full state.
type keyValue struct {
	key, codec string
	value      []byte
}

func encodeState(label string, kvs []keyValue) []byte {
	size := 1 + len(label) + 8
	for _, kv := range kvs {
		size += len(kv.key) + len(kv.codec) + len(kv.value) + 24
	}
	dst := make([]byte, 0, size)
	dst = append(dst, wireVersion)
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendString(dst, label)
	var inner []byte
	for _, kv := range kvs {
		inner = appendKeyValue(inner[:0], kv.key, kv.codec, kv.value)
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendBytes(dst, inner)
	}
	return dst
}

// decodeState parses a full state; values alias b.
func decodeState(b []byte) (label string, kvs []keyValue, err error) {
	if len(b) == 0 || b[0] != wireVersion {
		return "", nil, errWireVersion
	}
	b = b[1:]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", nil, fmt.Errorf("parse state tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType || num < 1 || num > 2 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", nil, fmt.Errorf("parse state field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", nil, fmt.Errorf("parse state field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 {
			label = string(v)
			continue
		}
		key, codec, value, err := parseKeyValue(v)
		if err != nil {
			return "", nil, err
		}
		kvs = append(kvs, keyValue{key, codec, value})
	}
	return label, kvs, nil
}
