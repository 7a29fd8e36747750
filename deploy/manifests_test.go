package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/internal/procs"
)

// helpOutput is `strata -help` of the binary built once per test run.
var helpOutput = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "strata-deploy-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := procs.BuildStrata(dir)
	if err != nil {
		return nil, err
	}
	out, _ := exec.Command(bin, "-help").CombinedOutput() // exit status differs between flag packages
	return out, nil
})

// strataFlags returns the flag names (without "-") of the built strata
// binary, from its -help output.
func strataFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := helpOutput()
	require.NoError(t, err)
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9._-]*)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	require.True(t, flags["target"], "no -target in `strata -help`:\n%s", out)
	return flags
}

var validTargets = map[string]bool{"all": true, "distributor": true, "ingester": true, "querier": true}

// invocation is one strata process a manifest starts.
type invocation struct {
	where string   // file and path inside it
	args  []string // command line after the binary
}

func (in invocation) flag(name string) (string, bool) {
	for _, a := range in.args {
		n, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if n == name {
			return v, true
		}
	}
	return "", false
}

// checkArgs reports every argument that is not a known strata flag and a
// -target that is missing or unknown.
func checkArgs(in invocation, flags map[string]bool) []string {
	var errs []string
	for _, a := range in.args {
		if !strings.HasPrefix(a, "-") {
			errs = append(errs, fmt.Sprintf("%s: argument %q is not a flag", in.where, a))
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !flags[name] {
			errs = append(errs, fmt.Sprintf("%s: strata has no flag -%s", in.where, name))
		}
	}
	target, ok := in.flag("target")
	switch {
	case !ok:
		errs = append(errs, in.where+": no -target")
	case !validTargets[target]:
		errs = append(errs, fmt.Sprintf("%s: -target=%s is not a strata target", in.where, target))
	}
	return errs
}

// yamlDoc is one YAML document of a file.
type yamlDoc struct {
	file string
	root map[string]any
}

func readYAML(t *testing.T) []yamlDoc {
	t.Helper()
	var docs []yamlDoc
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "." {
			return filepath.SkipDir // deploy/local/.data
		}
		if d.IsDir() || (filepath.Ext(path) != ".yml" && filepath.Ext(path) != ".yaml") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var root map[string]any
			err := dec.Decode(&root)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("parse %s document %d: %w", path, i, err)
			}
			if root != nil {
				docs = append(docs, yamlDoc{file: path, root: root})
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, docs)
	return docs
}

// invocations finds every container that runs the strata image: any
// mapping with an "image" naming strata, its "command" or "args" list.
func invocations(docs []yamlDoc) []invocation {
	var out []invocation
	var walk func(file, path string, v any)
	walk = func(file, path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if img, ok := v["image"].(string); ok && strings.Contains(img, "strata") {
				var args []string
				for _, key := range []string{"command", "args"} {
					list, _ := v[key].([]any)
					for _, a := range list {
						args = append(args, fmt.Sprint(a))
					}
				}
				out = append(out, invocation{where: file + ":" + path, args: args})
			}
			for _, k := range slices.Sorted(maps.Keys(v)) {
				if path == "" && strings.HasPrefix(k, "x-") {
					continue // a compose extension field: a template merged into services
				}
				walk(file, path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(file, fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	for _, d := range docs {
		walk(d.file, "", d.root)
	}
	return out
}

func TestManifestsUseRealFlags(t *testing.T) {
	flags := strataFlags(t)
	docs := readYAML(t)
	invs := invocations(docs)
	var errs []string
	targets := map[string]map[string]int{} // file group → target → count
	for _, in := range invs {
		errs = append(errs, checkArgs(in, flags)...)
		group := "kubernetes"
		if !strings.HasPrefix(in.where, "kubernetes"+string(filepath.Separator)) {
			group = strings.Split(in.where, ":")[0]
		}
		if targets[group] == nil {
			targets[group] = map[string]int{}
		}
		target, _ := in.flag("target")
		targets[group][target]++
		if target == "ingester" {
			if _, ok := in.flag("instance.zone"); !ok {
				errs = append(errs, in.where+": ingester without -instance.zone")
			}
		}
		if rf, _ := in.flag("ring.replication-factor"); target != "all" && rf != "3" {
			errs = append(errs, fmt.Sprintf("%s: -ring.replication-factor=%q, want 3", in.where, rf))
		}
		if _, ok := in.flag("memberlist.join"); target != "all" && !ok {
			errs = append(errs, in.where+": no -memberlist.join")
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d problems:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	// The topology of `make cluster` in both: 3 ingesters, distributors, a querier.
	for _, group := range []string{"docker-compose.yml", "kubernetes"} {
		require.Equal(t, 3, targets[group]["ingester"], "%s: ingesters", group)
		require.Positive(t, targets[group]["distributor"], "%s: distributors", group)
		require.Positive(t, targets[group]["querier"], "%s: queriers", group)
	}
}

func TestLocalClusterUsesRealFlags(t *testing.T) {
	flags := strataFlags(t)
	n := 0
	nodes, err := procs.PlanCluster(procs.ClusterConfig{Bin: "strata", Dir: t.TempDir()}, func() (string, error) {
		n++
		return fmt.Sprintf("127.0.0.1:%d", 20000+n), nil
	})
	require.NoError(t, err)
	roles := map[procs.Role]int{}
	zones := map[string]bool{}
	for _, node := range nodes {
		roles[node.Role]++
		if node.Zone != "" {
			zones[node.Zone] = true
		}
		errs := checkArgs(invocation{where: "deploy/local " + node.Name, args: node.Args}, flags)
		if len(errs) > 0 {
			t.Fatalf("%d problems:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	}
	require.Equal(t, map[procs.Role]int{procs.RoleIngester: 3, procs.RoleDistributor: 2, procs.RoleQuerier: 1}, roles)
	require.Len(t, zones, 3)
}

// get follows keys (string for a mapping, int for a sequence) into v.
func get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, keys ...any) string { s, _ := get(v, keys...).(string); return s }

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// selects reports whether selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	var k8s []yamlDoc
	for _, d := range readYAML(t) {
		if strings.HasPrefix(d.file, "kubernetes"+string(filepath.Separator)) {
			k8s = append(k8s, d)
		}
	}
	byKind := map[string][]yamlDoc{}
	for _, d := range k8s {
		kind := str(d.root, "kind")
		require.NotEmpty(t, kind, "%s: a document without kind", d.file)
		byKind[kind] = append(byKind[kind], d)
	}

	// kustomization.yaml lists exactly the other files.
	require.Len(t, byKind["Kustomization"], 1)
	var listed []string
	for _, r := range get(byKind["Kustomization"][0].root, "resources").([]any) {
		listed = append(listed, filepath.Join("kubernetes", fmt.Sprint(r)))
	}
	var files []string
	for _, d := range k8s {
		if d.file != filepath.Join("kubernetes", "kustomization.yaml") && !slices.Contains(files, d.file) {
			files = append(files, d.file)
		}
	}
	slices.Sort(listed)
	slices.Sort(files)
	require.Equal(t, files, listed, "kustomization.yaml resources")

	ns := str(byKind["Kustomization"][0].root, "namespace")
	type workload struct {
		name   string
		labels map[string]string
	}
	var workloads []workload
	var ingesterLabels []map[string]string
	headless := map[string]bool{}
	for _, d := range byKind["Service"] {
		if str(d.root, "spec", "clusterIP") == "None" {
			headless[str(d.root, "metadata", "name")] = true
		}
	}
	zones := map[string]bool{}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		for _, d := range byKind[kind] {
			name := kind + " " + str(d.root, "metadata", "name")
			labels := stringMap(get(d.root, "spec", "template", "metadata", "labels"))
			require.True(t, selects(stringMap(get(d.root, "spec", "selector", "matchLabels")), labels),
				"%s: selector does not match its pod labels", name)
			workloads = append(workloads, workload{name, labels})
			require.Equal(t, ns, str(d.root, "metadata", "namespace"), "%s: namespace", name)
			grace, _ := get(d.root, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
			require.GreaterOrEqual(t, grace, 30, "%s: terminationGracePeriodSeconds", name)
			containers, _ := get(d.root, "spec", "template", "spec", "containers").([]any)
			require.NotEmpty(t, containers, name)
			for i := range containers {
				require.Equal(t, "/ready", str(containers[i], "readinessProbe", "httpGet", "path"), "%s: readiness probe", name)
				var join, target, zone string
				for _, a := range get(containers[i], "args").([]any) {
					n, v, _ := strings.Cut(strings.TrimLeft(fmt.Sprint(a), "-"), "=")
					switch n {
					case "memberlist.join":
						join = v
					case "target":
						target = v
					case "instance.zone":
						zone = v
					}
				}
				host := strings.Split(join, ":")[0]
				svc, rest, _ := strings.Cut(host, ".")
				require.True(t, headless[svc] && rest == ns+".svc.cluster.local",
					"%s: -memberlist.join=%s is not a headless Service of namespace %s", name, join, ns)
				if target == "ingester" {
					require.Equal(t, "StatefulSet", kind, "%s: ingesters need stable volumes", name)
					require.NotEmpty(t, get(d.root, "spec", "volumeClaimTemplates"), "%s: volumeClaimTemplates", name)
					require.True(t, headless[str(d.root, "spec", "serviceName")], "%s: serviceName is not a headless Service", name)
					require.GreaterOrEqual(t, grace, 300, "%s: terminationGracePeriodSeconds must leave time to flush", name)
					require.False(t, zones[zone], "%s: zone %q used twice", name, zone)
					zones[zone] = true
					ingesterLabels = append(ingesterLabels, labels)
				}
			}
		}
	}
	require.Len(t, zones, 3, "one ingester StatefulSet per zone")

	for _, d := range byKind["Service"] {
		name := str(d.root, "metadata", "name")
		sel := stringMap(get(d.root, "spec", "selector"))
		var matched []string
		for _, w := range workloads {
			if selects(sel, w.labels) {
				matched = append(matched, w.name)
			}
		}
		require.NotEmpty(t, matched, "Service %s selects no workload", name)
	}
	require.NotEmpty(t, byKind["PodDisruptionBudget"], "ingesters need a PodDisruptionBudget")
	for _, d := range byKind["PodDisruptionBudget"] {
		sel := stringMap(get(d.root, "spec", "selector", "matchLabels"))
		for _, l := range ingesterLabels {
			require.True(t, selects(sel, l), "PodDisruptionBudget %s misses ingesters %v", str(d.root, "metadata", "name"), l)
		}
	}
}
