package storegateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

// segmentWriter builds a chunks segment file as Prometheus writes it.
type segmentWriter struct{ b []byte }

func (w *segmentWriter) add(enc byte, data []byte) (off int, raw []byte) {
	off = len(w.b)
	w.b = binary.AppendUvarint(w.b, uint64(len(data)))
	raw = append([]byte{enc}, data...)
	w.b = append(w.b, raw...)
	w.b = binary.BigEndian.AppendUint32(w.b, crc32.Checksum(raw, castagnoli))
	return off, raw
}

// Chunks close together share a range read, far ones do not, a chunk
// longer than the estimate is read again whole, and a corrupt one fails
// with the block, file and offset.
func TestFetchChunks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	w := &segmentWriter{b: make([]byte, 8)} // a segment header's worth
	type want struct {
		off int
		raw []byte
	}
	var chunksWanted []want
	for _, n := range []int{100, 200, 50, 3 * tailEstimate} { // neighbours, the last one longer than the estimate
		off, raw := w.add(1, payload(n))
		chunksWanted = append(chunksWanted, want{off, raw})
	}
	w.b = append(w.b, payload(2*maxGap)...) // a gap
	off, raw := w.add(2, payload(300))
	chunksWanted = append(chunksWanted, want{off, raw})

	bkt := objstore.NewInMemBucket()
	id := ulid.MustNew(1, nil)
	require.NoError(t, bkt.Upload(context.Background(), "t1/"+id.String()+"/chunks/000001", bytes.NewReader(w.b)))
	reg := prometheus.NewRegistry()
	g, err := New(testConfig(t), Deps{Bucket: bkt, Blocks: nopLister{}, Tenants: nopTenants, Reg: reg})
	require.NoError(t, err)
	lb := &loadedBlock{
		key: blockKey{"t1", id}, bkt: g.tenantBucket("t1"),
		segments: []segment{{name: block.ChunksDirname + "/000001", size: int64(len(w.b))}},
	}
	cs := make([]blockChunk, len(chunksWanted))
	for i, c := range chunksWanted {
		cs[len(cs)-1-i].ref = chunks.ChunkRef(chunks.NewBlockChunkRef(0, uint64(c.off))) // unsorted on purpose
	}
	require.NoError(t, g.fetchChunks(context.Background(), lb, cs))
	for i, c := range chunksWanted {
		require.Equal(t, c.raw, cs[len(cs)-1-i].raw, "chunk at %d", c.off)
	}
	require.Equal(t, 3.0, metricValue(t, reg, "strata_storegateway_chunk_range_requests_total"), "two ranges and one re-read")
	require.Equal(t, 1.0, metricValue(t, reg, "strata_storegateway_chunk_refetches_total"))

	// Cached now: no more reads.
	require.NoError(t, g.fetchChunks(context.Background(), lb, cs))
	require.Equal(t, 3.0, metricValue(t, reg, "strata_storegateway_chunk_range_requests_total"))

	w.b[chunksWanted[1].off+5] ^= 0xff // corrupt the second chunk
	require.NoError(t, bkt.Upload(context.Background(), "t1/"+id.String()+"/chunks/000001", bytes.NewReader(w.b)))
	g.chunks = newLRU[chunkKey, []byte](0, g.m.chunksCache)
	err = g.fetchChunks(context.Background(), lb, cs)
	require.ErrorContains(t, err, "of block "+id.String()+" (chunks/000001 at ")
	require.ErrorContains(t, err, "checksum mismatch")
}

func TestParseChunk(t *testing.T) {
	w := &segmentWriter{}
	_, raw := w.add(1, []byte("hello"))
	huge := binary.AppendUvarint(nil, 1<<29) // a length the segment cannot hold
	for _, tc := range []struct {
		name     string
		in       []byte
		avail    int64
		wantRaw  []byte
		wantNeed int
		wantErr  string // all errors are data loss
	}{
		{"whole", w.b, int64(len(w.b)), raw, len(w.b), ""},
		{"size unknown", w.b, -1, raw, len(w.b), ""},
		{"with what follows", append(append([]byte(nil), w.b...), 1, 2, 3), 100, raw, len(w.b), ""},
		{"cut", w.b[:4], int64(len(w.b)), nil, len(w.b), ""},
		{"empty", nil, -1, nil, maxLenFieldSize + 1 + tailEstimate, ""},
		{"empty near the segment's end", nil, 7, nil, 7, ""},
		{"bad length", bytes.Repeat([]byte{0xff}, 12), -1, nil, 0, "bad chunk length"},
		{"bad checksum", append(append([]byte(nil), w.b[:len(w.b)-1]...), w.b[len(w.b)-1]^1), int64(len(w.b)), nil, 0, "checksum mismatch"},
		{"length past the segment's end", huge, 4096, nil, 0, "ends past its segment file"},
		{"length field cut, bound by the segment's end", huge[:1], 4096, nil, 4096, ""},
		{"one byte past the segment's end", w.b, int64(len(w.b) - 1), nil, 0, "ends past its segment file"},
		{"at the segment's end", nil, 0, nil, 0, "at or past the end"},
		{"past the segment's end", nil, -5, nil, 0, "at or past the end"},
		{"length field cut by the segment's end", []byte{0x80, 0x80}, 2, nil, 0, "length field cut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, need, err := parseChunk(tc.in, tc.avail)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.True(t, isDataLoss(err), "%v is not data loss", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantRaw, got)
			require.Equal(t, tc.wantNeed, need)
		})
	}
}

// A chunk whose length field claims more than its segment file holds
// fails as data loss without a read of that length; so does a chunk
// reference past the file's end.
func TestFetchChunksLengthPastSegment(t *testing.T) {
	w := &segmentWriter{b: make([]byte, 8)}
	goodOff, _ := w.add(1, []byte("fine"))
	badOff := len(w.b)
	w.b = binary.AppendUvarint(w.b, 1<<29) // 512 MiB in a file of a few bytes
	w.b = append(w.b, 1, 2, 3, 4, 5)

	bkt := objstore.NewInMemBucket()
	id := ulid.MustNew(1, nil)
	require.NoError(t, bkt.Upload(context.Background(), "t1/"+id.String()+"/chunks/000001", bytes.NewReader(w.b)))
	for _, tc := range []struct {
		name    string
		off     int
		wantErr string
	}{
		{"length past the end", badOff, "ends past its segment file"},
		{"reference past the end", len(w.b) + 10, "at or past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			g, err := New(testConfig(t), Deps{Bucket: bkt, Blocks: nopLister{}, Tenants: nopTenants, Reg: reg})
			require.NoError(t, err)
			lb := &loadedBlock{
				key: blockKey{"t1", id}, bkt: g.tenantBucket("t1"),
				segments: []segment{{name: block.ChunksDirname + "/000001", size: int64(len(w.b))}},
			}
			cs := []blockChunk{
				{ref: chunks.ChunkRef(chunks.NewBlockChunkRef(0, uint64(goodOff)))},
				{ref: chunks.ChunkRef(chunks.NewBlockChunkRef(0, uint64(tc.off)))},
			}
			err = g.fetchChunks(context.Background(), lb, cs)
			require.ErrorContains(t, err, tc.wantErr)
			require.True(t, isDataLoss(err), "%v is not data loss", err)
			require.Zero(t, metricValue(t, reg, "strata_storegateway_chunk_refetches_total"), "no read of the claimed length")
		})
	}
}

type nopLister struct{}

func (nopLister) Blocks(context.Context, string, int64, int64) ([]bucketindex.BlockRef, error) {
	return nil, nil
}

func nopTenants(context.Context) ([]string, error) { return nil, nil }
