package ruler

import (
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParseGroup feeds the upload decoder arbitrary bodies: it may refuse
// them, never panic; a group it accepts encodes and decodes to itself.
func FuzzParseGroup(f *testing.F) {
	files, err := filepath.Glob("testdata/upload/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c := newChecker(nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		g, err := c.parseGroup(body)
		if err != nil {
			return
		}
		if checkName("group", g.Name) != nil {
			t.Fatalf("accepted group name %q", g.Name)
		}
		out, err := yaml.Marshal(&g)
		if err != nil {
			t.Fatalf("encode accepted group: %v", err)
		}
		g2, err := c.parseGroup(out)
		if err != nil {
			t.Fatalf("accepted group does not parse again: %v\n%s", err, out)
		}
		out2, _ := yaml.Marshal(&g2)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the group:\n%s\n---\n%s", out, out2)
		}
	})
}
