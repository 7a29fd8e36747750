package ring

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokensFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", TokensFileName)

	_, err := LoadTokensFile(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "a first start has no file")

	require.NoError(t, SaveTokensFile(path, []uint32{5, 1, 9}))
	got, err := LoadTokensFile(path)
	require.NoError(t, err)
	require.Equal(t, []uint32{1, 5, 9}, got)

	require.NoError(t, SaveTokensFile(path, []uint32{2, 3}), "overwrites")
	got, err = LoadTokensFile(path)
	require.NoError(t, err)
	require.Equal(t, []uint32{2, 3}, got)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind: %v", entries)
}

func TestLoadTokensFileRejects(t *testing.T) {
	for _, tc := range []struct{ name, content, wantErr string }{
		{"not json", "tokens: 1", "invalid character"},
		{"torn write", `{"tokens":[1,2`, "unexpected end"},
		{"no tokens", `{"tokens":[]}`, "no tokens"},
		{"negative token", `{"tokens":[-1]}`, "cannot unmarshal"},
		{"duplicates are dropped", `{"tokens":[3,3,1]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), TokensFileName)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			got, err := LoadTokensFile(path)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []uint32{1, 3}, got)
		})
	}
}
