package bucketindex

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeIndex feeds the index decoder arbitrary JSON (the seeds in
// testdata/fuzz/FuzzDecodeIndex are real and broken indexes). It must never
// panic; what it accepts must survive encode and decode unchanged.
//
//	go test ./bucketindex -run '^$' -fuzz FuzzDecodeIndex -fuzztime 1m
func FuzzDecodeIndex(f *testing.F) {
	js, err := testIndex().Encode()
	require.NoError(f, err)
	f.Add(js) // gzipped: exercises Decode's gzip path below
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Decode(data) // gzip layer: must not panic
		ix, err := decodeJSON(data)
		if err != nil {
			require.ErrorIs(t, err, ErrIndexCorrupted)
			return
		}
		b, err := ix.Encode()
		require.NoError(t, err)
		again, err := Decode(b)
		require.NoError(t, err)
		require.Equal(t, ix, again)
	})
}
