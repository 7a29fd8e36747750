package gossip

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestWireRoundTrip(t *testing.T) {
	msg := encodeMessage("ingester-ring", "ring.Desc/1", []byte{1, 2, 3})
	key, codec, value, err := decodeMessage(msg)
	require.NoError(t, err)
	require.Equal(t, "ingester-ring", key)
	require.Equal(t, "ring.Desc/1", codec)
	require.Equal(t, []byte{1, 2, 3}, value)

	kvs := []keyValue{{"a", "c1", []byte("x")}, {"b", "c2", nil}}
	label, got, err := decodeState(encodeState("blue", kvs))
	require.NoError(t, err)
	require.Equal(t, "blue", label)
	require.Len(t, got, 2)
	require.Equal(t, "a", got[0].key)
	require.Equal(t, []byte("x"), got[0].value)
	require.Empty(t, got[1].value)

	// A later version's extra fields are skipped.
	extra := protowire.AppendVarint(protowire.AppendTag(msg, 9, protowire.VarintType), 1)
	key, _, _, err = decodeMessage(extra)
	require.NoError(t, err)
	require.Equal(t, "ingester-ring", key)

	for _, bad := range [][]byte{nil, {2}, {wireVersion}, msg[:len(msg)-1]} {
		_, _, _, err := decodeMessage(bad)
		require.Error(t, err, "%x", bad)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(encodeMessage("k", "c", []byte("v")))
	f.Add(encodeState("label", []keyValue{{"k", "c", []byte("v")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if key, codec, value, err := decodeMessage(b); err == nil {
			k2, c2, v2, err := decodeMessage(encodeMessage(key, codec, value))
			require.NoError(t, err)
			require.Equal(t, []any{key, codec, string(value)}, []any{k2, c2, string(v2)})
		}
		if label, kvs, err := decodeState(b); err == nil {
			l2, kvs2, err := decodeState(encodeState(label, kvs))
			require.NoError(t, err)
			require.Equal(t, label, l2)
			require.Len(t, kvs2, len(kvs))
		}
	})
}
