package ruler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/bucket"
)

func TestBucketStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bkt, err := filesystem.NewBucket(dir)
	require.NoError(t, err)
	s := NewBucketStore(bkt)

	g := func(name string) rulefmt.RuleGroup {
		return rulefmt.RuleGroup{Name: name, Rules: []rulefmt.Rule{{Record: "r", Expr: "vector(1)"}}}
	}
	// Names that would be paths if used as such: stored as one element each.
	require.NoError(t, s.SetGroup(ctx, "team-a", "ns one", g("g1")))
	require.NoError(t, s.SetGroup(ctx, "team-a", "ns one", g("g0")))
	require.NoError(t, s.SetGroup(ctx, "team-a", "..", g(".")))
	require.NoError(t, s.SetGroup(ctx, "team-b", "ns one", g("g1")))

	all, err := s.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, []string{"g0", "g1"}, []string{all["team-a"]["ns one"][0].Name, all["team-a"]["ns one"][1].Name})
	require.Equal(t, ".", all["team-a"][".."][0].Name)
	require.Len(t, all["team-b"], 1)

	// Every file is under <dir>/@rules/<tenant>/ and no path element is a
	// name as given.
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, p)
		if !d.IsDir() {
			parts := strings.Split(filepath.ToSlash(rel), "/")
			require.Len(t, parts, 4, rel)
			require.Equal(t, rulesPrefix, parts[0])
			for _, e := range parts[2:] {
				require.NotContains(t, []string{".", "..", "ns one"}, e)
			}
		}
		return nil
	}))
	// The components that list tenants at the top level do not see it.
	tenants, err := bucket.Tenants(ctx, bkt)
	require.NoError(t, err)
	require.Empty(t, tenants)

	require.NoError(t, s.DeleteGroup(ctx, "team-a", "ns one", "g1"))
	require.ErrorIs(t, s.DeleteGroup(ctx, "team-a", "ns one", "g1"), ErrNotFound)
	require.ErrorIs(t, s.DeleteGroup(ctx, "team-a", "other", "g0"), ErrNotFound)
	ns, err := s.Tenant(ctx, "team-a")
	require.NoError(t, err)
	require.Len(t, ns["ns one"], 1)
	ns, err = s.Tenant(ctx, "team-c")
	require.NoError(t, err)
	require.Empty(t, ns)
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(p, s string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644))
	}
	write("ml.yaml", "groups:\n- name: b\n  rules:\n  - record: r\n    expr: vector(1)\n- name: a\n  rules: []\n")
	write("team-b/x.yml", "groups:\n- name: c\n  rules: []\n")
	write(".hidden", "not yaml: [")
	s := &DirStore{dir: dir, checker: newChecker(nil)}
	all, err := s.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "a", all["anonymous"]["ml.yaml"][0].Name)
	require.Equal(t, "b", all["anonymous"]["ml.yaml"][1].Name)
	require.Equal(t, "c", all["team-b"]["x.yml"][0].Name)
	require.ErrorIs(t, s.SetGroup(ctx, "anonymous", "ml.yaml", rulefmt.RuleGroup{Name: "z"}), ErrReadOnly)

	write("bad.yaml", "groups:\n- name: b\n  rules:\n  - record: r\n    expr: sum(\n")
	_, err = s.All(ctx)
	require.ErrorContains(t, err, "bad.yaml")
}
