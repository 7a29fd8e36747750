package main

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Set by the Makefile with -ldflags -X; empty in a plain `go build`.
// gitDescribe is `git describe --tags --always --dirty`: a tag (v0.3.1), a
// tag and the commits after it (v0.3.1-4-gc08ee9d), or without tags the
// short hash (c08ee9d), each with -dirty for a modified tree.
var gitDescribe, revision, branch, buildDate string

// buildInfo is what the process says it is: the semver version that
// /api/v1/status/buildinfo reports (Grafana picks its features by it) and
// what `strata -version` prints.
type buildInfo struct {
	Version, Revision, Branch, BuildDate, GoVersion string
}

// currentBuild returns the build of this binary: from the Makefile's
// -ldflags, else from the VCS stamp `go build` writes into the binary.
func currentBuild() buildInfo {
	b := buildInfo{Revision: revision, Branch: branch, BuildDate: buildDate, GoVersion: runtime.Version()}
	if gitDescribe != "" {
		b.Version = versionFromDescribe(gitDescribe)
		return b
	}
	vcs := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
	}
	b.Version = versionFromVCS(vcs["vcs.revision"], vcs["vcs.modified"] == "true")
	if b.Revision == "" {
		b.Revision = vcs["vcs.revision"]
	}
	if b.BuildDate == "" {
		b.BuildDate = vcs["vcs.time"] // the commit's time: the best a plain build knows
	}
	return b
}

// versionFromDescribe turns git describe output into a semver: 0.3.1 for
// a build of tag v0.3.1; 0.3.2-dev+c08ee9d for a build of a commit after it
// (above the tag, below the next release); 0.0.0-dev+c08ee9d when there is
// no tag; +<hash>.dirty for a modified tree. Anything else is
// 0.0.0-dev+<it, cleaned>.
func versionFromDescribe(d string) string {
	// A semver tag, optionally followed by the commit count and hash, or a
	// bare hash; optionally -dirty.
	describeRE := regexp.MustCompile(`^(?:v?(\d+)\.(\d+)\.(\d+)(?:-(\d+)-g([0-9a-f]+))?|([0-9a-f]{4,40}))(-dirty)?$`)
	m := describeRE.FindStringSubmatch(strings.TrimSpace(d))
	if m == nil {
		return "0.0.0-dev" + buildMeta(d, false)
	}
	dirty := m[7] != ""
	if m[6] != "" { // no tag: a bare hash
		return "0.0.0-dev" + buildMeta(m[6], dirty)
	}
	major, minor, patch := num(m[1]), num(m[2]), num(m[3])
	if m[4] == "" && !dirty {
		return fmt.Sprintf("%d.%d.%d", major, minor, patch)
	}
	hash := m[5]
	if hash == "" {
		hash = revision
	}
	return fmt.Sprintf("%d.%d.%d-dev", major, minor, patch+1) + buildMeta(hash, dirty)
}

// versionFromVCS is the version of a plain `go build`: 0.0.0-dev with the
// commit, if the binary was built in a git checkout.
func versionFromVCS(rev string, modified bool) string {
	return "0.0.0-dev" + buildMeta(rev, modified)
}

// buildMeta returns "+<short hash>[.dirty]", or "" (".dirty" alone becomes
// "+dirty") when there is no hash.
func buildMeta(hash string, dirty bool) string {
	var ids []string
	hash = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' {
			return r
		}
		return -1
	}, hash)
	if len(hash) > 7 {
		hash = hash[:7]
	}
	if hash != "" {
		ids = append(ids, hash)
	}
	if dirty {
		ids = append(ids, "dirty")
	}
	if len(ids) == 0 {
		return ""
	}
	return "+" + strings.Join(ids, ".")
}

func num(s string) int {
	n, _ := strconv.Atoi(s) // the regexp matched digits
	return n
}

// String is what `strata -version` prints.
func (b buildInfo) String() string {
	or := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	return fmt.Sprintf("strata, version %s (revision: %s, branch: %s)\n  build date: %s\n  go version: %s\n",
		b.Version, or(b.Revision), or(b.Branch), or(b.BuildDate), b.GoVersion)
}
