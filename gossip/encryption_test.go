package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// writeKeys writes keys to path the way an operator's tooling would:
// whole, by rename, so a reader never sees half a file.
func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# gossip keys, primary first\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(b.String()), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func encrypted(t *testing.T, keysFile string, seeds ...string) Config {
	c := testConfig(seeds...)
	c.EncryptionKeysFile = keysFile
	return c
}

// TestEncryptionRefusesRogueMembers: members sharing a key converge; a
// member without encryption, and one with another key, given a member as
// their seed, never join, never learn the ring and never change it.
func TestEncryptionRefusesRogueMembers(t *testing.T) {
	dir := t.TempDir()
	good, other := filepath.Join(dir, "good"), filepath.Join(dir, "other")
	writeKeys(t, good, newKey(t))
	writeKeys(t, other, newKey(t))

	a := start(t, "a", encrypted(t, good), nil)
	b := start(t, "b", encrypted(t, good, a.Addr()), nil)
	plain := start(t, "plain", testConfig(a.Addr()), nil)
	wrong := start(t, "wrong", encrypted(t, other, a.Addr()), nil)
	a.put(t, "owner", "a")
	plain.put(t, "owner", "rogue")
	wrong.put(t, "stolen", "yes")

	require.Eventually(t, membersOf(a, b), wait, 5*time.Millisecond)
	require.Eventually(t, hasAll([]*testNode{a, b}, "owner", "a"), wait, 5*time.Millisecond)
	for _, rogue := range []*testNode{plain, wrong} {
		require.Eventually(t, func() bool {
			return testutil.ToFloat64(rogue.m.joinAttempts.WithLabelValues("failure")) >= 3
		}, wait, 5*time.Millisecond, "%s keeps trying", rogue.name)
		require.Equal(t, 1, rogue.numMembers(), rogue.name)
		require.False(t, rogue.has("owner", "a"), "%s read the cluster's state", rogue.name)
		require.Zero(t, testutil.ToFloat64(rogue.m.joinAttempts.WithLabelValues("success")), rogue.name)
	}
	require.Equal(t, 2, a.numMembers())
	require.False(t, a.has("stolen", "yes"))
	require.True(t, b.has("owner", "a"), "the plain member's change did not overwrite the cluster's")
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.encryptionKeys))
	require.Zero(t, testutil.ToFloat64(plain.m.encryptionKeys))
}

// TestEncryptionKeyRotation: the documented three steps, applied to one
// member's file at a time while both run, keep them talking; at the end a
// member holding only the retired key is refused.
func TestEncryptionKeyRotation(t *testing.T) {
	dir := t.TempDir()
	old, next := newKey(t), newKey(t)
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeKeys(t, fa, old)
	writeKeys(t, fb, old)
	fast := func(kv *KV) { kv.keysReload = 20 * time.Millisecond }
	a := start(t, "a", encrypted(t, fa), fast)
	b := start(t, "b", encrypted(t, fb, a.Addr()), fast)
	require.Eventually(t, membersOf(a, b), wait, 5*time.Millisecond)

	step := 0
	converge := func(files []string, keys ...[]byte) {
		t.Helper()
		for _, f := range files {
			writeKeys(t, f, keys...)
		}
		for _, n := range []*testNode{a, b} {
			require.Eventually(t, func() bool {
				return testutil.ToFloat64(n.m.encryptionKeys) == float64(len(keys))
			}, wait, 5*time.Millisecond, "%s reloads its keys", n.name)
		}
		step++
		v := string(rune('0' + step))
		a.put(t, "step", v)
		require.Eventually(t, hasAll([]*testNode{a, b}, "step", v), wait, 5*time.Millisecond, "step %d", step)
	}
	converge([]string{fa, fb}, old, next) // 1: everyone can open the new key
	converge([]string{fa, fb}, next, old) // 2: everyone seals with it
	converge([]string{fa, fb}, next)      // 3: the old key is gone

	retired := filepath.Join(dir, "retired")
	writeKeys(t, retired, old)
	r := start(t, "retired", encrypted(t, retired, a.Addr()), nil)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(r.m.joinAttempts.WithLabelValues("failure")) >= 2
	}, wait, 5*time.Millisecond)
	require.Equal(t, 1, r.numMembers())
	require.Equal(t, 2, a.numMembers())
}

// TestEncryptionBadFileKeepsKeys: a reload that cannot parse the file keeps
// the keys in force and counts the failure.
func TestEncryptionBadFileKeepsKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "keys")
	k := newKey(t)
	writeKeys(t, f, k)
	a := start(t, "a", encrypted(t, f), func(kv *KV) { kv.keysReload = 10 * time.Millisecond })
	require.NoError(t, os.WriteFile(f, []byte("not base64!\n"), 0o600))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(a.m.encryptionReloadFailures) >= 1
	}, wait, 5*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(a.m.encryptionKeys))
}

func TestReadKeys(t *testing.T) {
	k16, k32 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	enc := base64.StdEncoding.EncodeToString
	for _, tc := range []struct{ name, file, wantErr string }{
		{"one", enc(k32) + "\n", ""},
		{"two with comments and blanks", "# primary\n" + enc(k16) + "\n\n" + enc(k32) + "\n", ""},
		{"empty", "# nothing\n\n", "holds no key"},
		{"not base64", "%%%\n", "line 1: not base64"},
		{"wrong size", enc([]byte("short")) + "\n", "line 1: key is 5 bytes, want 16, 24 or 32"},
		{"repeated", enc(k16) + "\n" + enc(k16) + "\n", "line 2: key repeated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "keys")
			require.NoError(t, os.WriteFile(f, []byte(tc.file), 0o600))
			_, err := readKeys(f)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	_, err := readKeys(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "read -memberlist.encryption-keys-file")
}
