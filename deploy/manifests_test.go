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
	"strconv"
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

var validTargets = map[string]bool{
	"all": true, "distributor": true, "ingester": true, "querier": true,
	"store-gateway": true, "compactor": true, "ruler": true,
}

// bucketUsers are the targets that read or write the blocks bucket: all of
// them in one cluster must share it.
var bucketUsers = map[string]bool{"ingester": true, "querier": true, "store-gateway": true, "compactor": true}

// invocation is one strata process a manifest starts.
type invocation struct {
	where string   // file and path inside it
	args  []string // command line after the binary
	// env is the process environment a manifest sets: name → where the
	// value comes from ("" for a literal, "secret/<name>" or
	// "configMap/<name>" for a Kubernetes reference).
	env map[string]string
	// envFrom names the ConfigMaps and Secrets loaded whole
	// ("configMap/<name>", "secret/<name>").
	envFrom []string
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

// isStrata reports whether image is the strata image.
func isStrata(image string) bool { return strings.Contains(image, "strata") }

// invocations finds every container that runs the strata image: any
// mapping with an "image" naming strata, its "entrypoint" (without the
// binary), "command" or "args" list, and its environment.
func invocations(docs []yamlDoc) []invocation {
	var out []invocation
	var walk func(file, path string, v any)
	walk = func(file, path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if img, ok := v["image"].(string); ok && isStrata(img) {
				var args []string
				for _, key := range []string{"entrypoint", "command", "args"} {
					list, _ := v[key].([]any)
					for i, a := range list {
						if key == "entrypoint" && i == 0 && strings.HasSuffix(fmt.Sprint(a), "strata") {
							continue // the binary
						}
						args = append(args, fmt.Sprint(a))
					}
				}
				in := invocation{where: file + ":" + path, args: args, env: map[string]string{}}
				readEnv(&in, v)
				out = append(out, in)
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

// readEnv fills in.env and in.envFrom from a compose service
// ("environment", a mapping or a list of NAME=value) or a Kubernetes
// container ("env", "envFrom").
func readEnv(in *invocation, v map[string]any) {
	switch e := v["environment"].(type) {
	case map[string]any:
		for k := range e {
			in.env[k] = ""
		}
	case []any:
		for _, kv := range e {
			k, _, _ := strings.Cut(fmt.Sprint(kv), "=")
			in.env[k] = ""
		}
	}
	for _, e := range asList(v["env"]) {
		src := ""
		if n := str(e, "valueFrom", "secretKeyRef", "name"); n != "" {
			src = "secret/" + n
		} else if n := str(e, "valueFrom", "configMapKeyRef", "name"); n != "" {
			src = "configMap/" + n
		}
		in.env[str(e, "name")] = src
	}
	for _, e := range asList(v["envFrom"]) {
		if n := str(e, "configMapRef", "name"); n != "" {
			in.envFrom = append(in.envFrom, "configMap/"+n)
		}
		if n := str(e, "secretRef", "name"); n != "" {
			in.envFrom = append(in.envFrom, "secret/"+n)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

// bucketOf names the bucket an invocation uses, "" when its flags do not
// name one it could share with other processes.
func bucketOf(in invocation) (string, error) {
	backend, ok := in.flag("blocks-storage.backend")
	if !ok {
		backend = "filesystem"
	}
	need := map[string][]string{
		"filesystem": {"blocks-storage.filesystem.dir"},
		"s3":         {"blocks-storage.s3.endpoint", "blocks-storage.s3.bucket-name"},
		"gcs":        {"blocks-storage.gcs.bucket-name"},
		"azure":      {"blocks-storage.azure.account-name", "blocks-storage.azure.container-name"},
		"swift":      {"blocks-storage.swift.auth-url", "blocks-storage.swift.container-name"},
	}[backend]
	if need == nil {
		return "", fmt.Errorf("-blocks-storage.backend=%s is unknown", backend)
	}
	id := backend
	for _, f := range need {
		v, ok := in.flag(f)
		if !ok || v == "" {
			return "", fmt.Errorf("-blocks-storage.backend=%s without -%s: the bucket is not shared", backend, f)
		}
		id += " " + f + "=" + v
	}
	return id, nil
}

// checkCluster checks what the processes of one cluster must agree on: one
// bucket for every bucket user (no object storage keys on a command line),
// one -store-gateway.replication-factor for queriers and store-gateways,
// and enough store-gateway zones for it.
func checkCluster(group string, invs []invocation) []string {
	var errs []string
	buckets := map[string][]string{}
	sgRF := map[string][]string{}
	sgZones := map[string]bool{}
	users := 0 // invocations that use the bucket
	for _, in := range invs {
		target, _ := in.flag("target")
		for _, secret := range []string{"blocks-storage.s3.access-key-id", "blocks-storage.s3.secret-access-key",
			"blocks-storage.azure.account-key", "blocks-storage.swift.password"} {
			if _, ok := in.flag(secret); ok {
				errs = append(errs, fmt.Sprintf("%s: -%s on the command line: give the key in the environment", in.where, secret))
			}
		}
		if !bucketUsers[target] {
			continue
		}
		users++
		id, err := bucketOf(in)
		if err != nil {
			errs = append(errs, in.where+": "+err.Error())
			continue
		}
		buckets[id] = append(buckets[id], in.where)
		if target == "querier" || target == "store-gateway" {
			rf, ok := in.flag("store-gateway.replication-factor")
			if !ok {
				rf = "default"
			}
			sgRF[rf] = append(sgRF[rf], in.where)
		}
		if target == "store-gateway" {
			zone, _ := in.flag("instance.zone")
			sgZones[zone] = true
		}
	}
	// A group of -target=all processes alone (the quickstarts) shares no
	// bucket: each keeps its own under its data dir.
	if len(buckets) != 1 && users > 0 {
		errs = append(errs, fmt.Sprintf("%s: want one bucket shared by every ingester, querier, store-gateway and compactor, got %d: %v", group, len(buckets), buckets))
	}
	if len(sgRF) > 1 {
		errs = append(errs, fmt.Sprintf("%s: queriers and store-gateways disagree on -store-gateway.replication-factor: %v", group, sgRF))
	}
	for rf := range sgRF {
		if n, err := strconv.Atoi(rf); err == nil && len(sgZones) < n {
			errs = append(errs, fmt.Sprintf("%s: -store-gateway.replication-factor=%d with store-gateways in %d zones", group, n, len(sgZones)))
		}
	}
	return errs
}

func TestManifestsUseRealFlags(t *testing.T) {
	flags := strataFlags(t)
	docs := readYAML(t)
	invs := invocations(docs)
	var errs []string
	targets := map[string]map[string]int{} // file group → target → count
	groups := map[string][]invocation{}
	for _, in := range invs {
		errs = append(errs, checkArgs(in, flags)...)
		group := "kubernetes"
		if !strings.HasPrefix(in.where, "kubernetes"+string(filepath.Separator)) {
			group = strings.Split(in.where, ":")[0]
		}
		if targets[group] == nil {
			targets[group] = map[string]int{}
		}
		groups[group] = append(groups[group], in)
		target, _ := in.flag("target")
		targets[group][target]++
		if target == "ingester" || target == "store-gateway" {
			if _, ok := in.flag("instance.zone"); !ok {
				errs = append(errs, in.where+": "+target+" without -instance.zone")
			}
		}
		if _, ok := in.env["AWS_ACCESS_KEY_ID"]; bucketUsers[target] && flagOr(in, "blocks-storage.backend") == "s3" && !ok && len(in.envFrom) == 0 {
			errs = append(errs, in.where+": an S3 bucket user without AWS_ACCESS_KEY_ID in its environment")
		}
		if rf, _ := in.flag("ring.replication-factor"); target != "all" && rf != "3" {
			errs = append(errs, fmt.Sprintf("%s: -ring.replication-factor=%q, want 3", in.where, rf))
		}
		if _, ok := in.flag("memberlist.join"); target != "all" && !ok {
			errs = append(errs, in.where+": no -memberlist.join")
		}
	}
	for _, group := range slices.Sorted(maps.Keys(groups)) {
		errs = append(errs, checkCluster(group, groups[group])...)
		for _, in := range groups[group] {
			if b, _ := in.flag("blocks-storage.backend"); bucketUsers[flagOr(in, "target")] && b != "s3" && b != "gcs" && b != "azure" && b != "swift" {
				errs = append(errs, in.where+": containers share no directory: use object storage (-blocks-storage.backend)")
			}
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d problems:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	// The topology of `make cluster` in both: 3 ingesters and 3
	// store-gateways, distributors, a querier, a compactor.
	for _, group := range []string{"docker-compose.yml", "kubernetes"} {
		require.Equal(t, 3, targets[group]["ingester"], "%s: ingesters", group)
		require.Equal(t, 3, targets[group]["store-gateway"], "%s: store-gateways", group)
		require.Positive(t, targets[group]["distributor"], "%s: distributors", group)
		require.Positive(t, targets[group]["querier"], "%s: queriers", group)
		require.Positive(t, targets[group]["compactor"], "%s: compactors", group)
	}
}

func flagOr(in invocation, name string) string { v, _ := in.flag(name); return v }

// TestComposeBucket: the S3 endpoint of docker-compose.yml is one of its
// services, and every strata service waits for the bucket to exist.
func TestComposeBucket(t *testing.T) {
	var compose map[string]any
	for _, d := range readYAML(t) {
		if d.file == "docker-compose.yml" {
			compose = d.root
		}
	}
	require.NotNil(t, compose)
	services, _ := compose["services"].(map[string]any)
	for _, in := range invocations([]yamlDoc{{file: "docker-compose.yml", root: compose}}) {
		if !bucketUsers[flagOr(in, "target")] {
			continue
		}
		host, _, _ := strings.Cut(flagOr(in, "blocks-storage.s3.endpoint"), ":")
		require.Contains(t, services, host, "%s: -blocks-storage.s3.endpoint is not a service of the file", in.where)
		name := strings.Split(strings.TrimPrefix(in.where, "docker-compose.yml:.services."), ".")[0]
		deps, _ := get(services, name, "depends_on").(map[string]any)
		var waits bool
		for dep := range deps {
			if str(deps, dep, "condition") == "service_completed_successfully" {
				waits = true
			}
		}
		require.True(t, waits, "%s: does not wait for the bucket-creating service", name)
	}
}

func TestLocalClusterUsesRealFlags(t *testing.T) {
	flags := strataFlags(t)
	n := 0
	nodes, err := procs.PlanCluster(LocalCluster("strata", t.TempDir()), func() (string, error) {
		n++
		return fmt.Sprintf("127.0.0.1:%d", 20000+n), nil
	})
	require.NoError(t, err)
	roles := map[procs.Role]int{}
	zones := map[string]bool{}
	var invs []invocation
	for _, node := range nodes {
		roles[node.Role]++
		if node.Zone != "" {
			zones[node.Zone] = true
		}
		in := invocation{where: "deploy/local " + node.Name, args: node.Args}
		invs = append(invs, in)
		errs := checkArgs(in, flags)
		if len(errs) > 0 {
			t.Fatalf("%d problems:\n%s", len(errs), strings.Join(errs, "\n"))
		}
	}
	if errs := checkCluster("deploy/local", invs); len(errs) > 0 {
		t.Fatalf("%d problems:\n%s", len(errs), strings.Join(errs, "\n"))
	}
	require.Equal(t, map[procs.Role]int{
		procs.RoleIngester: 3, procs.RoleDistributor: 2, procs.RoleQuerier: 1,
		procs.RoleStoreGateway: 3, procs.RoleCompactor: 1,
	}, roles)
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
	zones, sgZones := map[string]bool{}, map[string]bool{}
	var sgLabels []map[string]string
	// objects holds the keys of every ConfigMap and Secret: "secret/<name>"
	// → key → true.
	objects := map[string]map[string]bool{}
	for kind, prefix := range map[string]string{"ConfigMap": "configMap/", "Secret": "secret/"} {
		for _, d := range byKind[kind] {
			keys := map[string]bool{}
			for _, field := range []string{"data", "stringData"} {
				for k := range stringMap(get(d.root, field)) {
					keys[k] = true
				}
			}
			objects[prefix+str(d.root, "metadata", "name")] = keys
		}
	}
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
				checkEnvRefs(t, name, containers[i], objects)
				if !isStrata(str(containers[i], "image")) {
					continue // the bucket's MinIO
				}
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
				if target == "store-gateway" || target == "compactor" {
					require.Equal(t, "StatefulSet", kind, "%s: %ss need stable volumes", name, target)
					require.NotEmpty(t, get(d.root, "spec", "volumeClaimTemplates"), "%s: volumeClaimTemplates", name)
				}
				if target == "store-gateway" {
					require.False(t, sgZones[zone], "%s: store-gateway zone %q used twice", name, zone)
					sgZones[zone] = true
					sgLabels = append(sgLabels, labels)
				}
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
	require.Len(t, sgZones, 3, "one store-gateway StatefulSet per zone")

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
	// One PodDisruptionBudget over all ingesters, one over all store-gateways.
	for _, group := range []struct {
		name   string
		labels []map[string]string
	}{{"ingesters", ingesterLabels}, {"store-gateways", sgLabels}} {
		var covered bool
		for _, d := range byKind["PodDisruptionBudget"] {
			sel := stringMap(get(d.root, "spec", "selector", "matchLabels"))
			all := true
			for _, l := range group.labels {
				all = all && selects(sel, l)
			}
			covered = covered || all
		}
		require.True(t, covered, "no PodDisruptionBudget covers all %s", group.name)
	}

	// Every Job's containers reference only existing ConfigMap and Secret keys.
	for _, d := range byKind["Job"] {
		for _, c := range asList(get(d.root, "spec", "template", "spec", "containers")) {
			checkEnvRefs(t, "Job "+str(d.root, "metadata", "name"), c, objects)
		}
	}
}

// checkEnvRefs checks a Kubernetes container: every ConfigMap and Secret it
// loads exists and has the keys it names, every $(VAR) in its args is in
// its environment (else Kubernetes passes "$(VAR)" on unexpanded), and a
// strata container that uses an S3 bucket gets its keys from a Secret.
func checkEnvRefs(t *testing.T, name string, c any, objects map[string]map[string]bool) {
	t.Helper()
	in := invocation{env: map[string]string{}}
	readEnv(&in, c.(map[string]any))
	env := map[string]string{}
	for _, ref := range in.envFrom {
		keys, ok := objects[ref]
		require.True(t, ok, "%s: envFrom %s does not exist", name, ref)
		for k := range keys {
			env[k] = ref
		}
	}
	for _, e := range asList(get(c, "env")) {
		for _, kind := range []string{"secretKeyRef", "configMapKeyRef"} {
			if ref := str(e, "valueFrom", kind, "name"); ref != "" {
				obj := map[string]string{"secretKeyRef": "secret/", "configMapKeyRef": "configMap/"}[kind] + ref
				require.True(t, objects[obj][str(e, "valueFrom", kind, "key")], "%s: env %s: %s has no key %q", name, str(e, "name"), obj, str(e, "valueFrom", kind, "key"))
			}
		}
	}
	maps.Copy(env, in.env)
	var args []string
	for _, a := range asList(get(c, "args")) {
		args = append(args, fmt.Sprint(a))
	}
	for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(strings.Join(args, " "), -1) {
		_, ok := env[m[1]]
		require.True(t, ok, "%s: args use $(%s), which is not in its environment", name, m[1])
	}
	if isStrata(str(c, "image")) && slices.Contains(args, "-blocks-storage.backend=s3") {
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			require.True(t, strings.HasPrefix(env[k], "secret/"), "%s: %s does not come from a Secret", name, k)
		}
	}
}
