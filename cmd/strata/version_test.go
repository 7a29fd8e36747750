package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// semverRE is semver.org's regular expression for a version.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func TestVersionFromDescribe(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v0.3.1", "0.3.1"},
		{"0.3.1", "0.3.1"},
		{"v0.3.1-4-gc08ee9d", "0.3.2-dev+c08ee9d"},
		{"v0.3.1-4-gc08ee9d-dirty", "0.3.2-dev+c08ee9d.dirty"},
		{"v1.12.0-120-gc08ee9d1234", "1.12.1-dev+c08ee9d"},
		{"c08ee9d", "0.0.0-dev+c08ee9d"},
		{"c08ee9d-dirty", "0.0.0-dev+c08ee9d.dirty"},
		{"devel", "0.0.0-dev+devel"},
		{"release/x y", "0.0.0-dev+release"},
		{"", "0.0.0-dev"},
	} {
		got := versionFromDescribe(tc.describe)
		require.Equal(t, tc.want, got, tc.describe)
		require.Regexp(t, semverRE, got, tc.describe)
	}
}

func TestVersionFromVCS(t *testing.T) {
	for _, tc := range []struct {
		rev      string
		modified bool
		want     string
	}{
		{"c08ee9d1e2c3b4a5968778695a4b3c2d1e0f0a1b", false, "0.0.0-dev+c08ee9d"},
		{"c08ee9d1e2c3b4a5968778695a4b3c2d1e0f0a1b", true, "0.0.0-dev+c08ee9d.dirty"},
		{"", false, "0.0.0-dev"},
		{"", true, "0.0.0-dev+dirty"},
	} {
		got := versionFromVCS(tc.rev, tc.modified)
		require.Equal(t, tc.want, got)
		require.Regexp(t, semverRE, got)
	}
}

// TestCurrentBuildIsSemver: whatever built the test binary (no -ldflags),
// the version is a semver.
func TestCurrentBuildIsSemver(t *testing.T) {
	require.Regexp(t, semverRE, currentBuild().Version)
}

// TestVersionFlag: -version prints the build and exits without starting,
// whatever else the command line says.
func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-version", "-target=ingester"}, &out, &bytes.Buffer{}))
	require.Regexp(t, `^strata, version \S+ \(revision: \S+, branch: \S+\)\n  build date: \S+\n  go version: go`, out.String())
}
