package auth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadClusterSecrets(t *testing.T) {
	for _, tc := range []struct{ name, file, wantErr string }{
		{"one", "0123456789abcdef\n", ""},
		{"two, comments, blanks", "# sent\n0123456789abcdef\n\nfedcba9876543210\n", ""},
		{"empty", "# none\n", "holds no secret"},
		{"too short", "short\n", "line 1: secret is 5 bytes, want at least 16"},
		{"whitespace inside", "0123456789 abcdef\n", "line 1: secret contains whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "secret")
			require.NoError(t, os.WriteFile(f, []byte(tc.file), 0o600))
			s, err := LoadClusterSecrets(f)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			md, err := s.GetRequestMetadata(t.Context())
			require.NoError(t, err)
			require.Equal(t, "Bearer 0123456789abcdef", md["authorization"], "the first secret is sent")
		})
	}
	_, err := LoadClusterSecrets(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "read -auth.cluster-secret-file")
}
