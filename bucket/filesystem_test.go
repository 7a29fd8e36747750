package bucket

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Opening a filesystem bucket removes what crashed uploads left in
// ~upload-tmp (old files named as Upload names them) and nothing else.
func TestFilesystemTmpLeftovers(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, fsTmpDir)
	old := time.Now().Add(-2 * fsTmpMaxAge)
	for _, tc := range []struct {
		path     string
		dir      bool
		old      bool
		wantKept bool
	}{
		{path: filepath.Join(tmp, "upload-111"), old: true, wantKept: false},
		{path: filepath.Join(tmp, "upload-222"), old: true, wantKept: false},
		{path: filepath.Join(tmp, "upload-333"), old: false, wantKept: true}, // may be in progress
		{path: filepath.Join(tmp, "not-an-upload"), old: true, wantKept: true},
		{path: filepath.Join(tmp, "upload-dir"), dir: true, old: true, wantKept: true},
		{path: filepath.Join(root, "t1", "upload-444"), old: true, wantKept: true},
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(tc.path), 0o777))
		if tc.dir {
			require.NoError(t, os.Mkdir(tc.path, 0o777))
		} else {
			require.NoError(t, os.WriteFile(tc.path, []byte("partial"), 0o666))
		}
		if tc.old {
			require.NoError(t, os.Chtimes(tc.path, old, old))
		}
		defer func() {
			_, err := os.Lstat(tc.path)
			require.Equal(t, tc.wantKept, err == nil, "%s kept: %v", tc.path, err)
		}()
	}

	cfg := defaults(t)
	cfg.Filesystem.Dir = root
	bkt := openT(t, cfg, nil)
	ok, err := bkt.Exists(context.Background(), "t1/upload-444")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = os.Stat(tmp)
	require.NoError(t, err, "the directory itself stays")
}

// Uploads create the directories they need, the bucket's root included.
func TestFilesystemUploadCreatesDirs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not", "yet")
	b, err := newFSBucket(root, nil)
	if err != nil {
		t.Skipf("objstore's filesystem bucket needs its root: %v", err)
	}
	ctx := context.Background()
	require.NoError(t, b.Upload(ctx, "t1/01ABC/chunks/000001", bytes.NewReader([]byte("x"))))
	got, err := os.ReadFile(filepath.Join(root, "t1", "01ABC", "chunks", "000001"))
	require.NoError(t, err)
	require.Equal(t, "x", string(got))
	entries, err := os.ReadDir(filepath.Join(root, fsTmpDir))
	require.NoError(t, err)
	require.Empty(t, entries, "no temporary file left")
}
