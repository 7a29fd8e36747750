package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// fsTmpDir holds objects being uploaded to a filesystem bucket. '~' is not
// allowed in tenant ids, so Tenants never takes it for one.
const fsTmpDir = "~upload-tmp"

// fsTmpPrefix starts the name of every file Upload writes in fsTmpDir.
const fsTmpPrefix = "upload-"

// fsTmpMaxAge is the age from which a file in fsTmpDir is a crash's
// leftover, removed when a bucket is opened. Younger ones may be uploads
// in progress by another process (or component) sharing the directory.
const fsTmpMaxAge = time.Hour

// fsBucket is objstore's filesystem bucket with atomic, durable uploads.
// objstore writes an object in place, so a reader can see it half written
// and a crash leaves it truncated; a half-written meta.json would make a
// block being uploaded look corrupt to the compactor. Object stores
// publish an object only when its upload completes; fsBucket does the
// same: it writes into fsTmpDir under the root (the same file system),
// syncs, renames into place and syncs the directories it changed (the
// destination's, and the parents of those it created), so that an object
// whose upload returned survives a power cut.
type fsBucket struct {
	*filesystem.Bucket
	root string
}

// newFSBucket opens the filesystem bucket in dir and removes the leftovers
// of uploads a crash broke off (cleanTmp); a failure of that is logged.
func newFSBucket(dir string, log *slog.Logger) (*fsBucket, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := filesystem.NewBucket(root)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := cleanTmp(filepath.Join(root, fsTmpDir), time.Now().Add(-fsTmpMaxAge))
	if n > 0 {
		log.Info("removed the leftovers of broken-off uploads", "dir", filepath.Join(root, fsTmpDir), "files", n)
	}
	if err != nil {
		log.Warn("removing the leftovers of broken-off uploads", "err", err)
	}
	return &fsBucket{Bucket: b, root: root}, nil
}

// cleanTmp removes from the upload directory tmp the regular files Upload
// names (fsTmpPrefix) last modified before cutoff, and nothing else: not
// tmp itself, no directory, no link. It returns how many it removed.
func cleanTmp(tmp string, cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", tmp, err)
	}
	var (
		n    int
		errs []error
	)
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), fsTmpPrefix) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // renamed into place meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !info.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Upload writes the object atomically and durably.
func (b *fsBucket) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := filepath.Join(b.root, filepath.FromSlash(name))
	if err := mkdirAll(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tmpDir := filepath.Join(b.root, fsTmpDir)
	if err := mkdirAll(tmpDir); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	f, err := os.CreateTemp(tmpDir, fsTmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
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
	// The rename is durable once the destination directory is synced (the
	// temporary directory needs none: losing the file's old name there
	// loses nothing).
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// mkdirAll is os.MkdirAll that also syncs the parent of every directory
// it creates, so that the new directories survive a power cut.
func mkdirAll(dir string) error {
	var missing []string
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		// Another upload may create it meanwhile; its parent is synced
		// here all the same, so this upload does not rely on the other.
		if err := os.Mkdir(d, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs directory dir, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if errors.Is(err, syscall.EINVAL) {
		err = nil // a file system that cannot sync directories
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
