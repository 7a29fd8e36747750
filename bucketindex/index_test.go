package bucketindex

import (
	"bytes"
	"compress/gzip"
	"context"
	"math"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/block"
)

func testIndex() *Index {
	return &Index{
		Version: Version, UpdatedAt: 1700000000,
		Blocks: []Block{
			{ID: testID(1), MinTime: 0, MaxTime: 7200000, Source: block.SourceIngester, CompactionLevel: 1, Ingester: "ing-1", UploadedAt: 1700000000, SizeBytes: 1000},
			{ID: testID(2), MinTime: 7200000, MaxTime: 14400000, Source: block.SourceCompactor, CompactionLevel: 2, UploadedAt: 1700000100, SizeBytes: 2000},
			{ID: testID(3), MinTime: 14400000, MaxTime: 21600000, Source: block.SourceCompactor, CompactionLevel: 2, UploadedAt: 1700000200, SizeBytes: 3000},
		},
		DeletionMarks: []DeletionMark{{ID: testID(1), DeletionTime: 1700000000}, {ID: testID(3), DeletionTime: 1700003600}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, bkt := range map[string]objstore.Bucket{"inmem": objstore.NewInMemBucket(), "filesystem": fsBucket(t)} {
		t.Run(name, func(t *testing.T) {
			want := testIndex()
			require.NoError(t, WriteIndex(ctx, bkt, "t1", want))
			got, err := ReadIndex(ctx, bkt, "t1")
			require.NoError(t, err)
			require.Equal(t, want, got)

			_, err = ReadIndex(ctx, bkt, "t2")
			require.ErrorIs(t, err, ErrIndexNotFound)

			require.NoError(t, DeleteIndex(ctx, bkt, "t1"))
			require.NoError(t, DeleteIndex(ctx, bkt, "t1"), "deleting a deleted index")
			_, err = ReadIndex(ctx, bkt, "t1")
			require.ErrorIs(t, err, ErrIndexNotFound)
		})
	}
}

func gz(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestDecodeErrors(t *testing.T) {
	id1, id2 := testID(1).String(), testID(2).String()
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"not gzip", []byte(`{"version":1,"blocks":[]}`), "gzip: invalid header"},
		{"truncated gzip", gz(t, `{"version":1}`)[:12], "unexpected EOF"},
		{"not json", gz(t, `version=1`), "invalid character"},
		{"version 2", gz(t, `{"version":2}`), "version 2, want 1"},
		{"no version", gz(t, `{"blocks":[]}`), "version 0, want 1"},
		{"bad ulid", gz(t, `{"version":1,"blocks":[{"id":"x"}]}`), "ulid"},
		{"min after max", gz(t, `{"version":1,"blocks":[{"id":"`+id1+`","min_time":10,"max_time":5}]}`), "min_time 10 after max_time 5"},
		{"duplicate block", gz(t, `{"version":1,"blocks":[{"id":"`+id1+`"},{"id":"`+id1+`"}]}`), "listed twice"},
		{"duplicate mark", gz(t, `{"version":1,"deletion_marks":[{"id":"`+id2+`"},{"id":"`+id2+`"}]}`), "listed twice"},
		{"wrong type", gz(t, `{"version":1,"updated_at":"yesterday"}`), "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			require.ErrorIs(t, err, ErrIndexCorrupted)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestDecodeSortsAndAcceptsUnknownFields(t *testing.T) {
	id1, id2 := testID(1).String(), testID(2).String()
	ix, err := Decode(gz(t, `{"version":1,"future_field":true,"blocks":[{"id":"`+id2+`","min_time":5,"max_time":6},{"id":"`+id1+`","min_time":1,"max_time":2}],"deletion_marks":[{"id":"`+id2+`"},{"id":"`+id1+`"}]}`))
	require.NoError(t, err)
	require.Equal(t, []ulid.ULID{testID(1), testID(2)}, []ulid.ULID{ix.Blocks[0].ID, ix.Blocks[1].ID})
	require.NotNil(t, ix.DeletionMark(testID(1)))
	require.NotNil(t, ix.DeletionMark(testID(2)))
	require.Nil(t, ix.DeletionMark(testID(3)))
}

func TestWithin(t *testing.T) {
	ix := testIndex()
	ids := func(bs []Block) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b.ID[15])
		}
		return out
	}
	// Block 1 [0, 2h) marked at 1700000000, block 2 [2h, 4h) unmarked,
	// block 3 [4h, 6h) marked an hour later.
	const h = int64(3600000)
	for _, tc := range []struct {
		name         string
		mint, maxt   int64
		markedBefore int64 // Unix s
		want         []byte
	}{
		{"all, no mark old enough", math.MinInt64, math.MaxInt64, 1699999999, []byte{1, 2, 3}},
		{"mark exactly at cutoff drops", math.MinInt64, math.MaxInt64, 1700000000, []byte{2, 3}},
		{"both marks old", math.MinInt64, math.MaxInt64, 1800000000, []byte{2}},
		{"max time exclusive", 2 * h, 2 * h, 0, []byte{2}},
		{"last ms of block 1", 2*h - 1, 2*h - 1, 0, []byte{1}},
		{"range inclusive on both ends", 2*h - 1, 4 * h, 0, []byte{1, 2, 3}},
		{"before everything", -10, -1, 0, nil},
		{"after everything", 6 * h, 7 * h, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ids(ix.Within(tc.mint, tc.maxt, time.Unix(tc.markedBefore, 0))))
		})
	}
}

func fsBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	b, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return b
}
