package storegateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunks"
	"golang.org/x/sync/errgroup"
)

// chunkKey names one chunk of one block.
type chunkKey struct {
	block blockKey
	ref   chunks.ChunkRef
}

// blockChunk is one chunk of a series being read: where it is, and once
// read, its encoding byte followed by its data (shared with the cache).
type blockChunk struct {
	mint, maxt int64
	ref        chunks.ChunkRef
	raw        []byte
}

// How chunk reads are batched. Chunks in one segment file closer than
// maxGap are read in one range request (the bytes between them are read
// and dropped), up to maxRange bytes per request. A chunk's length is only
// known once its first bytes are read: a range ends tailEstimate bytes
// after its last chunk's start, which holds every float chunk (120 samples
// take ~100-1,500 bytes) and most histogram chunks; a longer chunk is read
// again whole.
const (
	maxGap          = 16 << 10
	maxRange        = 8 << 20
	tailEstimate    = 4 << 10
	rangeFetchers   = 4
	maxLenFieldSize = binary.MaxVarintLen32
	// maxChunkLen bounds a chunk's data when its segment's size is unknown
	// (no file list in meta.json).
	maxChunkLen = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fetchChunks fills in cs[i].raw, from the chunks cache or the bucket.
func (g *StoreGateway) fetchChunks(ctx context.Context, lb *loadedBlock, cs []blockChunk) error {
	var misses []*blockChunk
	for i := range cs {
		c := &cs[i]
		if raw, ok := g.chunks.get(chunkKey{lb.key, c.ref}); ok {
			c.raw = raw
			continue
		}
		misses = append(misses, c)
	}
	if len(misses) == 0 {
		return nil
	}
	slices.SortFunc(misses, func(a, b *blockChunk) int {
		switch {
		case a.ref < b.ref:
			return -1
		case a.ref > b.ref:
			return 1
		}
		return 0
	})
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(rangeFetchers)
	for start := 0; start < len(misses); {
		seg, first := chunks.BlockChunkRef(misses[start].ref).Unpack()
		end := start + 1
		for end < len(misses) {
			s, off := chunks.BlockChunkRef(misses[end].ref).Unpack()
			_, prev := chunks.BlockChunkRef(misses[end-1].ref).Unpack()
			if s != seg || off-prev > maxGap || off-first > maxRange {
				break
			}
			end++
		}
		group := misses[start:end]
		eg.Go(func() error { return g.fetchRange(ctx, lb, seg, group) })
		start = end
	}
	return eg.Wait()
}

// fetchRange reads the chunks cs, all in segment seg and sorted by offset,
// with one range request (plus one per chunk longer than estimated), and
// caches them.
func (g *StoreGateway) fetchRange(ctx context.Context, lb *loadedBlock, seg int, cs []*blockChunk) error {
	name, size, err := lb.segmentFile(seg)
	if err != nil {
		return err
	}
	_, first := chunks.BlockChunkRef(cs[0].ref).Unpack()
	_, last := chunks.BlockChunkRef(cs[len(cs)-1].ref).Unpack()
	end := int64(last) + tailEstimate
	if size >= 0 {
		if int64(first) >= size {
			return &dataLossError{fmt.Errorf("chunk %d of block %s at %d: past the end of %s (%d bytes)", cs[0].ref, lb.key.id, first, name, size)}
		}
		end = min(end, size)
	}
	buf, err := g.readRange(ctx, lb, name, int64(first), end-int64(first))
	if err != nil {
		return err
	}
	for _, c := range cs {
		_, off := chunks.BlockChunkRef(c.ref).Unpack()
		avail := int64(-1) // bytes from off to the segment's end
		if size >= 0 {
			avail = size - int64(off)
		}
		raw, need, err := parseChunk(buf[min(off-first, len(buf)):], avail)
		if err == nil && raw == nil {
			// Longer than the range read: read it again whole (need is
			// within the segment: parseChunk checked it).
			g.m.chunkRefetch.Inc()
			var b []byte
			if b, err = g.readRange(ctx, lb, name, int64(off), int64(need)); err == nil {
				raw, _, err = parseChunk(b, avail)
				if err == nil && raw == nil {
					err = &dataLossError{fmt.Errorf("%d bytes, the file ends first", need)}
				}
			}
		}
		if err != nil {
			return fmt.Errorf("reading chunk %d of block %s (%s at %d): %w", c.ref, lb.key.id, name, off, err)
		}
		// Its own copy: a view would pin the whole range read in memory
		// while the cache counts only the chunk, breaking its bound.
		raw = bytes.Clone(raw)
		g.chunks.add(chunkKey{lb.key, c.ref}, raw, int64(len(raw)))
		c.raw = raw
	}
	return nil
}

// readRange reads length bytes of the block's object name from off; fewer
// when the object ends first.
func (g *StoreGateway) readRange(ctx context.Context, lb *loadedBlock, name string, off, length int64) ([]byte, error) {
	g.m.bucketRanges.Inc()
	r, err := lb.bkt.GetRange(ctx, path.Join(lb.key.id.String(), name), off, length)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	buf := make([]byte, length)
	n, err := io.ReadFull(r, buf)
	g.m.bucketBytes.WithLabelValues("chunks").Add(float64(n))
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return buf[:n], nil
}

// parseChunk decodes the chunk at the start of b (uvarint data length,
// encoding byte, data, CRC32-Castagnoli of encoding and data) into a new
// slice holding the encoding byte and the data. avail is how many bytes
// the segment file holds from the chunk's start (-1: unknown, then at
// most maxChunkLen of data); a chunk that would end past them, like a bad
// checksum, is a dataLossError. When b ends before the chunk does it
// returns nil and the chunk's length in bytes (or a bound on it when even
// the length field is cut), never more than avail.
func parseChunk(b []byte, avail int64) (raw []byte, need int, err error) {
	if avail == 0 || avail < -1 {
		return nil, 0, &dataLossError{fmt.Errorf("chunk starts at or past the end of its segment file")}
	}
	l, n := binary.Uvarint(b)
	if n == 0 || (n < 0 && len(b) < maxLenFieldSize) {
		need := maxLenFieldSize + 1 + tailEstimate
		if avail > 0 && int64(need) > avail {
			if int64(len(b)) >= avail {
				return nil, 0, &dataLossError{fmt.Errorf("chunk length field cut by the end of its segment file")}
			}
			need = int(avail)
		}
		return nil, need, nil
	}
	if n < 0 || l > maxChunkLen {
		return nil, 0, &dataLossError{fmt.Errorf("bad chunk length field")}
	}
	total := n + 1 + int(l) + crc32.Size
	if avail > 0 && int64(total) > avail {
		return nil, 0, &dataLossError{fmt.Errorf("chunk of %d bytes ends past its segment file, which holds %d bytes from its start", total, avail)}
	}
	if len(b) < total {
		return nil, total, nil
	}
	body := b[n : n+1+int(l)]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[n+1+int(l):total]); got != want {
		return nil, 0, &dataLossError{fmt.Errorf("checksum mismatch: stored %08x, computed %08x", want, got)}
	}
	return append([]byte(nil), body...), total, nil
}
