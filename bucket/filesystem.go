package bucket

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// fsTmpDir holds objects being uploaded to a filesystem bucket. '~' is not
// allowed in tenant ids, so Tenants never takes it for one.
const fsTmpDir = "~upload-tmp"

// fsBucket is objstore's filesystem bucket with atomic uploads. objstore
// writes an object in place, so a reader can see it half written and a
// crash leaves it truncated; a half-written meta.json would make a block
// being uploaded look corrupt to the compactor. Object stores publish an
// object only when its upload completes; fsBucket does the same: it
// writes into fsTmpDir under the root (the same file system), syncs, and
// renames into place.
type fsBucket struct {
	*filesystem.Bucket
	root string
}

func newFSBucket(dir string) (*fsBucket, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := filesystem.NewBucket(root)
	if err != nil {
		return nil, err
	}
	return &fsBucket{Bucket: b, root: root}, nil
}

// Upload writes the object atomically.
func (b *fsBucket) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := filepath.Join(b.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
		return err
	}
	tmpDir := filepath.Join(b.root, fsTmpDir)
	if err := os.MkdirAll(tmpDir, 0o777); err != nil {
		return err
	}
	f, err := os.CreateTemp(tmpDir, "upload-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}
