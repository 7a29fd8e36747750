package e2e

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/strata-metrics/strata/internal/procs"
)

// build is the strata binary shared by every test of one `go test` run: built
// on first use into a directory TestMain removes at the end.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		os.Exit(1)
	}
	build.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// strataBin returns the strata binary. If it does not build, the test is
// skipped with the compiler's message, except where $CI is set (a broken
// build must fail there).
func strataBin(t *testing.T) string {
	t.Helper()
	build.once.Do(func() { build.bin, build.err = procs.BuildStrata(build.dir) })
	if build.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(build.err)
		}
		t.Skipf("strata binary not available, skipping: %v", build.err)
	}
	return build.bin
}
