package bucketindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// Updater builds a tenant's index from a full listing of the tenant's
// prefix. It is the compactor's; shippers only add blocks (add.go).
type Updater struct {
	bkt objstore.Bucket
	log *slog.Logger
	now func() time.Time
}

// NewUpdater returns an Updater over bkt (the bucket root). now is the
// clock (time.Now in production).
func NewUpdater(bkt objstore.Bucket, log *slog.Logger, now func() time.Time) *Updater {
	return &Updater{bkt: bkt, log: log, now: now}
}

// Report is what an update saw besides the index.
type Report struct {
	// Partial are the blocks without meta.json: an upload in progress, one
	// that failed half way, or a deletion in progress (DeletionMarked).
	// They are not in the index.
	Partial []PartialBlock
	// Corrupt are the blocks whose meta.json cannot be decoded. They are
	// not in the index.
	Corrupt []CorruptBlock
	// NoCompact are the blocks of the index that have a no-compact mark.
	NoCompact map[ulid.ULID]struct{}
	// MetasRead is how many meta.json the update read (blocks new since
	// the previous index).
	MetasRead int
}

// PartialBlock is a block directory without meta.json.
type PartialBlock struct {
	ID ulid.ULID
	// LastModified is the newest of the block's objects, zero when the
	// bucket cannot say.
	LastModified   time.Time
	DeletionMarked bool
}

// Age is how long ago the block's newest object was written; when the
// bucket cannot say, how long ago its ULID was made (when it was cut).
func (p *PartialBlock) Age(now time.Time) time.Duration {
	if !p.LastModified.IsZero() {
		return now.Sub(p.LastModified)
	}
	return now.Sub(ulid.Time(p.ID.Time()))
}

// CorruptBlock is a block whose meta.json exists but cannot be decoded
// (or is being written, on a bucket whose uploads are not atomic).
type CorruptBlock struct {
	ID  ulid.ULID
	Err error
	// LastModified is meta.json's, zero when the bucket cannot say.
	LastModified time.Time
}

// listed is what the listing found under one block's prefix.
type listed struct {
	meta, deletionMark, noCompact bool
	metaModified, newest          time.Time
}

// Update lists tenant's prefix and returns its index, reusing the entries
// of the previous index (meta.json is read only for new blocks, deletion
// marks only for newly marked blocks). It does not write the index. A
// failed read of a meta.json or mark fails the update, so that an index
// never drops a block because of a passing error; a corrupt previous index
// is replaced (logged).
func (u *Updater) Update(ctx context.Context, tenant string) (*Index, *Report, error) {
	old, err := ReadIndex(ctx, u.bkt, tenant)
	switch {
	case errors.Is(err, ErrIndexNotFound):
		old = &Index{Version: Version}
	case errors.Is(err, ErrIndexCorrupted):
		u.log.Warn("replacing corrupt bucket index", "tenant", tenant, "err", err)
		old = &Index{Version: Version}
	case err != nil:
		return nil, nil, err
	}
	tbkt := objstore.NewPrefixedBucket(u.bkt, tenant)
	found, err := listBlocks(ctx, tbkt)
	if err != nil {
		return nil, nil, fmt.Errorf("listing blocks of tenant %s: %w", tenant, err)
	}

	now := u.now()
	ix := &Index{Version: Version, UpdatedAt: now.Unix(), Blocks: []Block{}, DeletionMarks: []DeletionMark{}}
	rep := &Report{NoCompact: map[ulid.ULID]struct{}{}}
	ids := make([]ulid.ULID, 0, len(found))
	for id := range found {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
	known := make(map[ulid.ULID]*Block, len(old.Blocks))
	for i := range old.Blocks {
		known[old.Blocks[i].ID] = &old.Blocks[i]
	}
	for _, id := range ids {
		l := found[id]
		if !l.meta {
			rep.Partial = append(rep.Partial, PartialBlock{ID: id, LastModified: l.newest, DeletionMarked: l.deletionMark})
			continue
		}
		b := known[id]
		if b == nil {
			nb, err := u.readBlock(ctx, tbkt, id, l.metaModified, now)
			var corrupt *corruptError
			switch {
			case errors.As(err, &corrupt):
				rep.Corrupt = append(rep.Corrupt, CorruptBlock{ID: id, Err: err, LastModified: l.metaModified})
				continue
			case errors.Is(err, errNotFound):
				// Deleted since the listing: a deletion in progress.
				rep.Partial = append(rep.Partial, PartialBlock{ID: id, LastModified: l.newest, DeletionMarked: l.deletionMark})
				continue
			case err != nil:
				return nil, nil, fmt.Errorf("updating bucket index of tenant %s: %w", tenant, err)
			}
			rep.MetasRead++
			b = nb
		}
		ix.Blocks = append(ix.Blocks, *b)
		if l.noCompact {
			rep.NoCompact[id] = struct{}{}
		}
		if !l.deletionMark {
			continue
		}
		if m := old.DeletionMark(id); m != nil {
			ix.DeletionMarks = append(ix.DeletionMarks, *m)
			continue
		}
		var dm block.DeletionMark
		err := readJSON(ctx, tbkt, path.Join(id.String(), block.DeletionMarkFilename), &dm)
		var corrupt *corruptError
		switch {
		case errors.As(err, &corrupt):
			// A mark says the block is going; an unreadable one too. Its
			// delay counts from now (kept by the next updates).
			u.log.Warn("unreadable deletion mark; counting the block as marked now", "tenant", tenant, "block", id, "err", err)
			ix.DeletionMarks = append(ix.DeletionMarks, DeletionMark{ID: id, DeletionTime: now.Unix()})
		case errors.Is(err, errNotFound):
			// Removed since the listing: the block is being deleted.
		case err != nil:
			return nil, nil, fmt.Errorf("updating bucket index of tenant %s: %w", tenant, err)
		default:
			ix.DeletionMarks = append(ix.DeletionMarks, DeletionMark{ID: id, DeletionTime: dm.DeletionTime})
		}
	}
	ix.sort()
	return ix, rep, nil
}

// errNotFound: an object listed a moment ago is gone.
var errNotFound = errors.New("object not found")

// corruptError is an object that exists and cannot be decoded.
type corruptError struct{ err error }

func (e *corruptError) Error() string { return e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// readJSON decodes object name of bkt into v.
func readJSON(ctx context.Context, bkt objstore.BucketReader, name string, v any) error {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return fmt.Errorf("reading %s: %w", name, errNotFound)
		}
		return fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &corruptError{fmt.Errorf("decoding %s: %w", name, err)}
	}
	return nil
}

// readBlock reads block id's meta.json into an index entry.
func (u *Updater) readBlock(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID, metaModified, now time.Time) (*Block, error) {
	name := path.Join(id.String(), block.MetaFilename)
	var m block.Meta
	if err := readJSON(ctx, tbkt, name, &m); err != nil {
		return nil, err
	}
	switch {
	case m.Version != 1:
		return nil, &corruptError{fmt.Errorf("decoding %s: unsupported version %d", name, m.Version)}
	case m.ULID != id:
		return nil, &corruptError{fmt.Errorf("decoding %s: it names block %s", name, m.ULID)}
	case m.MinTime > m.MaxTime:
		return nil, &corruptError{fmt.Errorf("decoding %s: min time %d after max time %d", name, m.MinTime, m.MaxTime)}
	}
	if metaModified.IsZero() {
		if attrs, err := tbkt.Attributes(ctx, name); err == nil {
			metaModified = attrs.LastModified
		}
	}
	if metaModified.IsZero() {
		metaModified = now
	}
	b := BlockOf(&m, metaModified)
	return &b, nil
}

// BlockOf is block m's index entry, uploaded (meta.json written) at
// uploadedAt.
func BlockOf(m *block.Meta, uploadedAt time.Time) Block {
	b := Block{
		ID: m.ULID, MinTime: m.MinTime, MaxTime: m.MaxTime,
		Source: m.Strata.Source, CompactionLevel: m.Compaction.Level, Ingester: m.Strata.Ingester,
		UploadedAt: uploadedAt.Unix(),
	}
	for _, f := range m.Strata.Files {
		b.SizeBytes += f.Size
	}
	return b
}

// listBlocks lists every object under tbkt (one tenant) and sums them up
// per block. Objects outside block directories (the index) are skipped.
func listBlocks(ctx context.Context, tbkt objstore.Bucket) (map[ulid.ULID]*listed, error) {
	opts := []objstore.IterOption{objstore.WithRecursiveIter()}
	if slices.Contains(tbkt.SupportedIterOptions(), objstore.UpdatedAt) {
		opts = append(opts, objstore.WithUpdatedAt())
	}
	found := map[ulid.ULID]*listed{}
	err := tbkt.IterWithAttributes(ctx, "", func(a objstore.IterObjectAttributes) error {
		dir, file, ok := strings.Cut(a.Name, "/")
		if !ok || file == "" {
			return nil
		}
		id, ok := block.ParseDir(dir)
		if !ok {
			return nil
		}
		l := found[id]
		if l == nil {
			l = &listed{}
			found[id] = l
		}
		mod, _ := a.LastModified()
		if mod.After(l.newest) {
			l.newest = mod
		}
		switch file {
		case block.MetaFilename:
			l.meta, l.metaModified = true, mod
		case block.DeletionMarkFilename:
			l.deletionMark = true
		case block.NoCompactMarkFilename:
			l.noCompact = true
		}
		return nil
	}, opts...)
	return found, err
}
