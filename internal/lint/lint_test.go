package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/strata-metrics/strata"

// components run as a -target of their own and meet the others only
// through the gRPC contracts in proto/ and the rings: none imports another,
// and no shared package imports any of them. Components that do not exist
// yet are listed so that the rule holds from their first commit.
var components = []string{
	"distributor", "ingester", "querier", "storegateway", "compactor",
	"queryfrontend", "ruler", "alertmanager",
}

// assemblers put components together into processes and tests; they alone
// may import every component.
var assemblers = []string{"cmd", "e2e", "deploy", "internal/clustertest"}

// grabBags are package names that say nothing of the concept they hold.
var grabBags = []string{"util", "utils", "common", "helper", "helpers", "misc", "lib", "shared", "base", "tools"}

// serverClients: a server never imports a client of itself (the client is
// its callers' concern, and importing it is how a server starts to depend
// on its own callers).
var serverClients = map[string][]string{
	"ingester":     {"clientpool"},
	"storegateway": {"clientpool"},
}

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Imports    []string
}

var (
	loadOnce   sync.Once
	loaded     []pkg
	loadFailed string
)

// loadPackages is `go list -json ./...` from the module root, with paths
// made relative to the module; listed once per test binary.
func loadPackages(t *testing.T) []pkg {
	t.Helper()
	loadOnce.Do(func() { loaded, loadFailed = listPackages() })
	if loadFailed != "" {
		t.Fatal(loadFailed)
	}
	return loaded
}

func listPackages() ([]pkg, string) {
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Sprintf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Sprintf("decode go list output: %v", err)
		}
		p.ImportPath = rel(p.ImportPath)
		for i, imp := range p.Imports {
			p.Imports[i] = rel(imp)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		return nil, fmt.Sprintf("go list found %d packages; is the test run from internal/lint?", len(pkgs))
	}
	return pkgs, ""
}

// rel is the module-relative path of an import path of this module, and
// "" for anything outside it.
func rel(importPath string) string {
	if importPath == module {
		return "."
	}
	if r, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return r
	}
	return ""
}

// within reports whether p is dir or below it.
func within(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func withinAny(p string, dirs []string) (string, bool) {
	for _, d := range dirs {
		if within(p, d) {
			return d, true
		}
	}
	return "", false
}

// TestImportRules checks production code only: tests may assemble real
// components (through internal/clustertest) to test them together.
func TestImportRules(t *testing.T) {
	for _, p := range loadPackages(t) {
		if _, ok := withinAny(p.ImportPath, assemblers); ok {
			continue
		}
		own, isComponent := withinAny(p.ImportPath, components)
		for _, imp := range p.Imports {
			if imp == "" {
				continue
			}
			if c, ok := withinAny(imp, components); ok && (!isComponent || c != own) {
				if isComponent {
					t.Errorf("%s imports %s: components never import one another; meet through proto/ and the rings", p.ImportPath, imp)
				} else {
					t.Errorf("%s imports %s: shared packages never import a component; only %v assemble components", p.ImportPath, imp, assemblers)
				}
			}
			if within(p.ImportPath, "proto") && !within(imp, "proto") {
				t.Errorf("%s imports %s: proto/ holds contracts and tiny helpers, no logic, so it imports nothing else of Strata", p.ImportPath, imp)
			}
			if _, ok := withinAny(imp, []string{"internal/procs", "internal/lint"}); ok {
				t.Errorf("%s imports %s: test and tool infrastructure is not part of a running Strata", p.ImportPath, imp)
			}
			if isComponent {
				if slices.ContainsFunc(serverClients[own], func(c string) bool { return within(imp, c) }) {
					t.Errorf("%s imports %s: a server never imports a client of itself", p.ImportPath, imp)
				}
			}
		}
	}
}

func TestNoGrabBagPackages(t *testing.T) {
	for _, p := range loadPackages(t) {
		if slices.Contains(grabBags, path.Base(p.ImportPath)) || slices.Contains(grabBags, p.Name) {
			t.Errorf("package %s: %q names no concept; put the code beside the concept it serves", p.ImportPath, p.Name)
		}
	}
}

// TestEveryPackageHasDocGo: doc.go says a package's place in the data flow.
func TestEveryPackageHasDocGo(t *testing.T) {
	for _, p := range loadPackages(t) {
		if !slices.Contains(p.GoFiles, "doc.go") {
			t.Errorf("package %s has no doc.go saying its role in the data flow", p.ImportPath)
			continue
		}
		src, err := os.ReadFile(filepath.Join(p.Dir, "doc.go"))
		if err != nil {
			t.Fatal(err)
		}
		want := "// Package " + p.Name + " "
		if p.Name == "main" {
			want = "// "
		}
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("%s/doc.go does not open with %q", p.ImportPath, want+"...")
		}
	}
}
