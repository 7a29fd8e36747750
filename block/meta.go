package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
)

// File names inside a block, locally and in the bucket.
const (
	MetaFilename          = "meta.json"
	IndexFilename         = "index"
	ChunksDirname         = "chunks"
	DeletionMarkFilename  = "deletion-mark.json"
	NoCompactMarkFilename = "no-compact-mark.json"
)

// Source says which component made a block.
type Source string

// The components that write blocks.
const (
	SourceIngester  Source = "ingester"
	SourceCompactor Source = "compactor"
	// SourceBackfill is a block a tenant uploaded (strata backfill).
	SourceBackfill Source = "backfill"
)

// Meta is a block's meta.json: Prometheus' BlockMeta (so tsdb.OpenBlock reads
// a downloaded block as it is) plus Strata's section.
type Meta struct {
	tsdb.BlockMeta
	Strata Ext `json:"strata"`
}

// Ext is Strata's part of meta.json.
type Ext struct {
	Tenant string `json:"tenant"`
	Source Source `json:"source"`
	// Ingester is the instance id that cut the block (ingester blocks only);
	// the compactor uses it to tell replicas' copies apart.
	Ingester string `json:"ingester,omitempty"`
	// Files lists every object of the block except meta.json itself, with
	// paths relative to the block and sizes in bytes.
	Files []File `json:"files"`
}

// File is one object of a block.
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// ID returns the block's ULID.
func (m *Meta) ID() ulid.ULID { return m.ULID }

// ReadMetaFile reads dir/meta.json.
func ReadMetaFile(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, fmt.Errorf("reading block meta: %w", err)
	}
	return decodeMeta(b)
}

func decodeMeta(b []byte) (*Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding block meta: %w", err)
	}
	if m.Version != 1 {
		return nil, fmt.Errorf("decoding block meta: unsupported version %d", m.Version)
	}
	return &m, nil
}

// WriteMetaFile writes m to dir/meta.json atomically (temporary file, fsync,
// rename), replacing the file Prometheus wrote.
func WriteMetaFile(dir string, m *Meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding block meta: %w", err)
	}
	tmp := filepath.Join(dir, MetaFilename+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("writing block meta: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing block meta: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing block meta: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing block meta: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, MetaFilename)); err != nil {
		return fmt.Errorf("writing block meta: %w", err)
	}
	return nil
}

// ReadMeta reads the meta.json of block id from bkt (a tenant's bucket). A
// missing meta.json (partial block) is an error for which IsNotFound holds.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*Meta, error) {
	b, err := getAll(ctx, bkt, path.Join(id.String(), MetaFilename))
	if err != nil {
		return nil, err
	}
	return decodeMeta(b)
}

// localFiles lists dir's block files (meta.json excluded) with their sizes,
// in upload order: chunks first, then the index.
func localFiles(dir string) ([]File, error) {
	var files []File
	entries, err := os.ReadDir(filepath.Join(dir, ChunksDirname))
	if err != nil {
		return nil, fmt.Errorf("listing block chunks: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("listing block chunks: %w", err)
		}
		files = append(files, File{Path: ChunksDirname + "/" + e.Name(), Size: info.Size()})
	}
	info, err := os.Stat(filepath.Join(dir, IndexFilename))
	if err != nil {
		return nil, fmt.Errorf("reading block index: %w", err)
	}
	return append(files, File{Path: IndexFilename, Size: info.Size()}), nil
}

// Upload uploads the block in dir to bkt (a tenant's bucket) under its ULID:
// every file first, meta.json (with ext and the file list filled in) last, so
// the block becomes visible only when complete. Uploading again after a
// failure overwrites whatever part reached the bucket. It returns the meta it
// uploaded.
func Upload(ctx context.Context, bkt objstore.Bucket, dir string, ext Ext) (*Meta, error) {
	m, err := ReadMetaFile(dir)
	if err != nil {
		return nil, err
	}
	files, err := localFiles(dir)
	if err != nil {
		return nil, err
	}
	ext.Files = files
	m.Strata = ext
	id := m.ULID.String()
	for _, f := range files {
		if err := uploadFile(ctx, bkt, filepath.Join(dir, filepath.FromSlash(f.Path)), path.Join(id, f.Path)); err != nil {
			return nil, err
		}
	}
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("encoding block meta: %w", err)
	}
	if err := bkt.Upload(ctx, path.Join(id, MetaFilename), bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("uploading %s: %w", path.Join(id, MetaFilename), err)
	}
	return m, nil
}

func uploadFile(ctx context.Context, bkt objstore.Bucket, src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("uploading %s: %w", dst, err)
	}
	defer f.Close()
	if err := bkt.Upload(ctx, dst, f); err != nil {
		return fmt.Errorf("uploading %s: %w", dst, err)
	}
	return nil
}

// Download fetches block m from bkt (a tenant's bucket) into dst (created),
// checking every file's size against meta.json, and writes meta.json last.
func Download(ctx context.Context, bkt objstore.BucketReader, m *Meta, dst string) error {
	id := m.ULID.String()
	if err := os.MkdirAll(filepath.Join(dst, ChunksDirname), 0o755); err != nil {
		return fmt.Errorf("downloading block %s: %w", id, err)
	}
	for _, f := range m.Strata.Files {
		if err := downloadFile(ctx, bkt, path.Join(id, f.Path), filepath.Join(dst, filepath.FromSlash(f.Path)), f.Size); err != nil {
			return fmt.Errorf("downloading block %s: %w", id, err)
		}
	}
	return WriteMetaFile(dst, m)
}

func downloadFile(ctx context.Context, bkt objstore.BucketReader, src, dst string, size int64) error {
	if strings.Contains(src, "..") {
		return fmt.Errorf("refusing object name %q", src)
	}
	r, err := bkt.Get(ctx, src)
	if err != nil {
		return fmt.Errorf("getting %s: %w", src, err)
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("getting %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("getting %s: %d bytes, meta.json says %d", src, n, size)
	}
	return nil
}

// Delete removes block id from bkt: meta.json first (the block turns partial
// and invisible at once), then every other object under the block, marks
// last. Deleting a block that is already gone is not an error.
func Delete(ctx context.Context, bkt objstore.Bucket, id ulid.ULID) error {
	prefix := id.String()
	if err := deleteIfExists(ctx, bkt, path.Join(prefix, MetaFilename)); err != nil {
		return err
	}
	var names, marks []string
	err := bkt.Iter(ctx, prefix+"/", func(name string) error {
		switch path.Base(name) {
		case MetaFilename:
		case DeletionMarkFilename, NoCompactMarkFilename:
			marks = append(marks, name)
		default:
			names = append(names, name)
		}
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		return fmt.Errorf("listing block %s: %w", prefix, err)
	}
	for _, n := range append(names, marks...) {
		if err := deleteIfExists(ctx, bkt, n); err != nil {
			return err
		}
	}
	return nil
}

func deleteIfExists(ctx context.Context, bkt objstore.Bucket, name string) error {
	if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// ParseDir returns the ULID of a block directory or object prefix name such
// as "01H…/" or "01H…"; ok is false for anything else (bucket index, marks
// of other kinds, temporary directories).
func ParseDir(name string) (id ulid.ULID, ok bool) {
	id, err := ulid.ParseStrict(strings.TrimSuffix(path.Base(strings.TrimSuffix(name, "/")), "/"))
	return id, err == nil
}

// errNotFound wraps an object-not-found error of the bucket.
type errNotFound struct{ err error }

func (e errNotFound) Error() string { return e.err.Error() }
func (e errNotFound) Unwrap() error { return e.err }

// IsNotFound reports whether err says an object (meta.json, a mark) does not
// exist.
func IsNotFound(err error) bool {
	var nf errNotFound
	return errors.As(err, &nf)
}

func getAll(ctx context.Context, bkt objstore.BucketReader, name string) ([]byte, error) {
	r, err := bkt.Get(ctx, name)
	if err != nil {
		if bkt.IsObjNotFoundErr(err) {
			return nil, errNotFound{fmt.Errorf("getting %s: %w", name, err)}
		}
		return nil, fmt.Errorf("getting %s: %w", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", name, err)
	}
	return b, nil
}
