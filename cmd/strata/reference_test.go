package main

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README.md's generated reference")

const (
	refBegin = "<!-- BEGIN GENERATED REFERENCE: make docs -->"
	refEnd   = "<!-- END GENERATED REFERENCE -->"
)

// yamlPaths maps the address of every config field to its YAML path.
func yamlPaths(v reflect.Value, prefix string, out map[uintptr]string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		fv := v.Field(i)
		// A struct that is a flag's value (limits.RateMap) is one field.
		isValue := fv.Addr().Type().Implements(reflect.TypeFor[flag.Value]())
		if fv.Kind() == reflect.Struct && fv.Type().String() != "time.Duration" && !isValue {
			yamlPaths(fv, path, out)
			continue
		}
		out[fv.Addr().Pointer()] = path
	}
}

// reference renders every flag with its YAML path, default and help.
func reference() string {
	cfg := &Config{}
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	paths := map[uintptr]string{}
	yamlPaths(reflect.ValueOf(cfg).Elem(), "", paths)
	var b strings.Builder
	b.WriteString("| flag | YAML | default | what it does |\n| --- | --- | --- | --- |\n")
	fs.VisitAll(func(f *flag.Flag) {
		path := paths[reflect.ValueOf(f.Value).Pointer()]
		if path == "" {
			path = "—" // command line only, e.g. -config.file
		} else {
			path = "`" + path + "`"
		}
		def := f.DefValue
		if f.Name == "instance.id" {
			def = "the host name"
		}
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "| `-%s` | %s | `%s` | %s |\n", f.Name, path, def, strings.ReplaceAll(f.Usage, "|", "\\|"))
	})
	return b.String()
}

// TestReadmeReference keeps README.md's flag table equal to the code's
// flags; `make docs` rewrites it.
func TestReadmeReference(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, refBegin), strings.Index(s, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the markers %q and %q", refBegin, refEnd)
	}
	want := s[:i+len(refBegin)] + "\n" + reference() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile("../../README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("README.md's flag reference is out of date: run `make docs`")
}

func TestEveryFlagHasYAML(t *testing.T) {
	cfg := &Config{}
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	paths := map[uintptr]string{}
	yamlPaths(reflect.ValueOf(cfg).Elem(), "", paths)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config.file" || f.Name == "version" {
			return // where the configuration is, and a command: not configuration
		}
		if paths[reflect.ValueOf(f.Value).Pointer()] == "" {
			t.Errorf("flag -%s has no YAML field (STYLE.md: flags and YAML one to one)", f.Name)
		}
	})
}
