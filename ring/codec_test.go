package ring

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestDescCodecRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 5))
	for i := range 1000 {
		d := randDesc(rnd)
		b, err := DescCodec{}.Encode(d)
		require.NoError(t, err)
		got, err := DescCodec{}.Decode(b)
		require.NoError(t, err)
		require.Equal(t, d, got, "case %d", i)
		b2, _ := DescCodec{}.Encode(got)
		require.Equal(t, b, b2, "encoding is deterministic (case %d)", i)
	}
	big := bigDesc(100)
	got, err := DecodeDesc(AppendDesc(nil, big))
	require.NoError(t, err)
	require.Equal(t, big, got)
}

func TestDecodeDesc(t *testing.T) {
	inst := func(fields ...func([]byte) []byte) []byte {
		var in []byte
		for _, f := range fields {
			in = f(in)
		}
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendBytes(b, in)
	}
	id := func(s string) func([]byte) []byte {
		return func(b []byte) []byte {
			return protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), s)
		}
	}
	tokens := func(ts ...uint32) func([]byte) []byte {
		return func(b []byte) []byte {
			var p []byte
			for _, t := range ts {
				p = protowire.AppendFixed32(p, t)
			}
			return protowire.AppendBytes(protowire.AppendTag(b, 5, protowire.BytesType), p)
		}
	}
	hb := func(v uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, 6, protowire.VarintType), v)
		}
	}
	unknown := func(b []byte) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, 99, protowire.VarintType), 7)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		want    map[string]Instance
		wantErr string
	}{
		{"empty", nil, map[string]Instance{}, ""},
		{"unsorted duplicate tokens are sorted", inst(id("a"), tokens(9, 3, 3)), map[string]Instance{"a": {ID: "a", Tokens: []uint32{3, 9}}}, ""},
		{"unknown fields skipped", cat(inst(id("a"), unknown), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1)), map[string]Instance{"a": {ID: "a"}}, ""},
		{"same instance twice keeps the newer", cat(inst(id("a"), hb(5)), inst(id("a"), hb(7)), inst(id("a"), hb(6))), map[string]Instance{"a": {ID: "a", Heartbeat: 7}}, ""},
		{"no id", inst(hb(5)), nil, "empty id"},
		{"tokens not a multiple of 4", inst(id("a"), func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, 5, protowire.BytesType), []byte{1, 2, 3})
		}), nil, "malformed tokens"},
		{"truncated", inst(id("abc"))[:4], nil, "decode ring"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDesc(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, d.Instances)
		})
	}
}

func FuzzDecodeDesc(f *testing.F) {
	rnd := rand.New(rand.NewPCG(1, 1))
	for range 8 {
		f.Add(AppendDesc(nil, randDesc(rnd)))
	}
	f.Add(AppendDesc(nil, bigDesc(3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDesc(b) // may reject; must not panic or over-allocate
		if err != nil {
			return
		}
		again, err := DecodeDesc(AppendDesc(nil, d))
		require.NoError(t, err)
		require.Equal(t, d, again)
	})
}

func BenchmarkDescCodec(b *testing.B) {
	d := bigDesc(100)
	enc := AppendDesc(nil, d)
	b.Run("encode 100 instances", func(b *testing.B) {
		buf := make([]byte, 0, len(enc))
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			buf = AppendDesc(buf[:0], d)
		}
	})
	b.Run("decode 100 instances", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := DecodeDesc(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
