package block

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// DeletionMark says a block is going away: readers skip it at once, the
// compactor deletes its objects once DeletionTime is older than its delay
// (queriers that loaded the block before the mark keep working meanwhile).
type DeletionMark struct {
	ID           ulid.ULID `json:"id"`
	DeletionTime int64     `json:"deletion_time"` // Unix seconds
	Reason       string    `json:"reason"`
	Version      int       `json:"version"`
}

// NoCompactMark says the compactor must leave a block alone (it failed to
// read it); the block is still queried if readable.
type NoCompactMark struct {
	ID            ulid.ULID `json:"id"`
	NoCompactTime int64     `json:"no_compact_time"` // Unix seconds
	Reason        string    `json:"reason"`
	Version       int       `json:"version"`
}

const markVersion = 1

// MarkForDeletion writes block id's deletion mark unless there is one (the
// first mark's time counts).
func MarkForDeletion(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, reason string, now time.Time) error {
	return writeMark(ctx, bkt, id, DeletionMarkFilename, DeletionMark{ID: id, DeletionTime: now.Unix(), Reason: reason, Version: markVersion})
}

// MarkNoCompact writes block id's no-compact mark unless there is one.
func MarkNoCompact(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, reason string, now time.Time) error {
	return writeMark(ctx, bkt, id, NoCompactMarkFilename, NoCompactMark{ID: id, NoCompactTime: now.Unix(), Reason: reason, Version: markVersion})
}

func writeMark(ctx context.Context, bkt objstore.Bucket, id ulid.ULID, file string, mark any) error {
	name := path.Join(id.String(), file)
	ok, err := bkt.Exists(ctx, name)
	if err != nil {
		return fmt.Errorf("checking %s: %w", name, err)
	}
	if ok {
		return nil
	}
	b, err := json.Marshal(mark)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", name, err)
	}
	if err := bkt.Upload(ctx, name, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("uploading %s: %w", name, err)
	}
	return nil
}

// ReadDeletionMark returns block id's deletion mark, or nil when it has none.
func ReadDeletionMark(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*DeletionMark, error) {
	var m DeletionMark
	ok, err := readMark(ctx, bkt, id, DeletionMarkFilename, &m)
	if !ok {
		return nil, err
	}
	return &m, nil
}

// ReadNoCompactMark returns block id's no-compact mark, or nil when it has none.
func ReadNoCompactMark(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*NoCompactMark, error) {
	var m NoCompactMark
	ok, err := readMark(ctx, bkt, id, NoCompactMarkFilename, &m)
	if !ok {
		return nil, err
	}
	return &m, nil
}

func readMark(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID, file string, v any) (bool, error) {
	b, err := getAll(ctx, bkt, path.Join(id.String(), file))
	if IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("decoding %s of block %s: %w", file, id, err)
	}
	return true, nil
}
