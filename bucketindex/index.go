package bucketindex

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// IndexFilename is the index object's name under its tenant's prefix.
const IndexFilename = "bucket-index.json.gz"

// Version is the only index format version.
const Version = 1

// maxIndexBytes bounds the decompressed index: about 250 bytes a block, so
// a million blocks; a larger object is corrupt (or a gzip bomb).
const maxIndexBytes = 256 << 20

// Errors of ReadIndex.
var (
	// ErrIndexNotFound: the tenant has no index yet. Readers take it as
	// "no blocks yet".
	ErrIndexNotFound = errors.New("bucket index not found")
	// ErrIndexCorrupted: the object exists and cannot be decoded.
	ErrIndexCorrupted = errors.New("bucket index corrupted")
)

// Index is one tenant's blocks and deletion marks. Once published (written,
// loaded, returned) it is never modified: readers share it.
type Index struct {
	Version int `json:"version"`
	// UpdatedAt is when the compactor listed the bucket, Unix seconds.
	UpdatedAt     int64          `json:"updated_at"`
	Blocks        []Block        `json:"blocks"`
	DeletionMarks []DeletionMark `json:"deletion_marks"`
}

// Block is one complete block (its meta.json exists).
type Block struct {
	ID ulid.ULID `json:"id"`
	// MinTime and MaxTime are the block's time range in Unix ms, MaxTime
	// exclusive, as in meta.json.
	MinTime         int64        `json:"min_time"`
	MaxTime         int64        `json:"max_time"`
	Source          block.Source `json:"source"`
	CompactionLevel int          `json:"compaction_level"`
	Ingester        string       `json:"ingester,omitempty"`
	// UploadedAt is when meta.json was written (the upload completed), or
	// when the compactor first saw the block if the bucket cannot say;
	// Unix seconds.
	UploadedAt int64 `json:"uploaded_at"`
	// SizeBytes is the sum of the block's files (meta.json excluded).
	SizeBytes int64 `json:"size_bytes"`
}

// DeletionMark says a block of the index is going away.
type DeletionMark struct {
	ID ulid.ULID `json:"id"`
	// DeletionTime is when the block was marked, Unix seconds.
	DeletionTime int64 `json:"deletion_time"`
}

// Overlaps reports whether the block holds samples in [mint, maxt] (both
// inclusive, Unix ms).
func (b *Block) Overlaps(mint, maxt int64) bool {
	return b.MinTime <= maxt && mint < b.MaxTime
}

// Within returns the blocks overlapping [mint, maxt] (Unix ms, inclusive)
// that a reader queries: every block except those whose deletion mark is at
// or before markedBefore (now minus the reader's grace; see the package
// doc). The result is sorted by MinTime, then ID, and owned by the caller.
func (ix *Index) Within(mint, maxt int64, markedBefore time.Time) []Block {
	cutoff := markedBefore.Unix()
	var out []Block
	for i := range ix.Blocks {
		b := &ix.Blocks[i]
		if !b.Overlaps(mint, maxt) {
			continue
		}
		if m := ix.DeletionMark(b.ID); m != nil && m.DeletionTime <= cutoff {
			continue
		}
		out = append(out, *b)
	}
	return out
}

// DeletionMark returns block id's deletion mark, nil when it has none.
func (ix *Index) DeletionMark(id ulid.ULID) *DeletionMark {
	i, ok := slices.BinarySearchFunc(ix.DeletionMarks, id, func(m DeletionMark, id ulid.ULID) int { return m.ID.Compare(id) })
	if !ok {
		return nil
	}
	return &ix.DeletionMarks[i]
}

// Block returns the block with id, nil when the index has none.
func (ix *Index) Block(id ulid.ULID) *Block {
	for i := range ix.Blocks {
		if ix.Blocks[i].ID == id {
			return &ix.Blocks[i]
		}
	}
	return nil
}

// Updated returns UpdatedAt as a time.
func (ix *Index) Updated() time.Time { return time.Unix(ix.UpdatedAt, 0) }

// sort puts blocks in (MinTime, ID) order and marks in ID order, the order
// Within and DeletionMark rely on and the encoding keeps.
func (ix *Index) sort() {
	slices.SortFunc(ix.Blocks, func(a, b Block) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return a.ID.Compare(b.ID)
	})
	slices.SortFunc(ix.DeletionMarks, func(a, b DeletionMark) int { return a.ID.Compare(b.ID) })
}

// Encode returns the index as stored: gzipped JSON.
func (ix *Index) Encode() ([]byte, error) {
	js, err := json.Marshal(ix)
	if err != nil {
		return nil, fmt.Errorf("encoding bucket index: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(js); err != nil {
		return nil, fmt.Errorf("compressing bucket index: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing bucket index: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode decodes a stored (gzipped) index. Any malformed input is an error
// wrapping ErrIndexCorrupted.
func Decode(b []byte) (*Index, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndexCorrupted, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndexCorrupted, err)
	}
	if len(js) > maxIndexBytes {
		return nil, fmt.Errorf("%w: over %d bytes decompressed", ErrIndexCorrupted, maxIndexBytes)
	}
	return decodeJSON(js)
}

// decodeJSON decodes and checks the index's JSON.
func decodeJSON(js []byte) (*Index, error) {
	var ix Index
	if err := json.Unmarshal(js, &ix); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIndexCorrupted, err)
	}
	if ix.Version != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrIndexCorrupted, ix.Version, Version)
	}
	seen := make(map[ulid.ULID]struct{}, len(ix.Blocks))
	for i := range ix.Blocks {
		b := &ix.Blocks[i]
		if b.MinTime > b.MaxTime {
			return nil, fmt.Errorf("%w: block %s has min_time %d after max_time %d", ErrIndexCorrupted, b.ID, b.MinTime, b.MaxTime)
		}
		if _, dup := seen[b.ID]; dup {
			return nil, fmt.Errorf("%w: block %s listed twice", ErrIndexCorrupted, b.ID)
		}
		seen[b.ID] = struct{}{}
	}
	marks := make(map[ulid.ULID]struct{}, len(ix.DeletionMarks))
	for _, m := range ix.DeletionMarks {
		if _, dup := marks[m.ID]; dup {
			return nil, fmt.Errorf("%w: deletion mark of block %s listed twice", ErrIndexCorrupted, m.ID)
		}
		marks[m.ID] = struct{}{}
	}
	ix.sort()
	return &ix, nil
}

// ReadIndex reads tenant's index from bkt (the bucket root). A missing index
// is an error for which errors.Is(err, ErrIndexNotFound) holds; an
// undecodable one, ErrIndexCorrupted.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*Index, error) {
	name := tenant + "/" + IndexFilename
	r, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, fmt.Errorf("reading %s: %w", name, ErrIndexNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	ix, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return ix, nil
}

// WriteIndex writes tenant's index to bkt (the bucket root) in one upload:
// readers see the previous index or this one, never a mix (on object
// stores; see the bucket package for the filesystem).
func WriteIndex(ctx context.Context, bkt objstore.Bucket, tenant string, ix *Index) error {
	b, err := ix.Encode()
	if err != nil {
		return err
	}
	name := tenant + "/" + IndexFilename
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// DeleteIndex removes tenant's index; a missing one is not an error.
func DeleteIndex(ctx context.Context, bkt objstore.Bucket, tenant string) error {
	name := tenant + "/" + IndexFilename
	if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}
