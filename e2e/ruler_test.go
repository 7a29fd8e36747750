package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// rulerGroup is the rule group the ruler tests upload: a recording rule
// and an alert on the same expression.
const rulerGroup = `name: accuracy
interval: 1s
rules:
- record: job:ml_accuracy:avg
  expr: avg by (job) (ml_accuracy)
- alert: AccuracyLow
  expr: avg by (job) (ml_accuracy) < 0.9
  for: 2s
  labels:
    severity: page
  annotations:
    summary: 'accuracy of {{ $labels.job }} is {{ $value }}'
`

type rulesAnswer struct {
	Groups []struct {
		Name, File string
		Rules      []struct {
			Name, Type, Health, State string
			LastError                 string `json:"lastError"`
		}
	}
}

type alertsAnswer struct {
	Alerts []struct {
		Labels      map[string]string
		Annotations map[string]string
		State       string
		ActiveAt    *time.Time `json:"activeAt"`
		Value       string
	}
}

func getJSON(ctx context.Context, t *testing.T, c *client, path string, data any) {
	t.Helper()
	b, err := c.ok(ctx, http.MethodGet, path, nil, nil)
	require.NoError(t, err)
	require.NoError(t, decodeData(b, data))
}

// TestRuler runs a real strata: a rule group uploaded through
// /config/v1/rules is evaluated, its recording rule's series equals the
// expression evaluated directly, its alert fires in /api/v1/alerts, and
// another tenant sees none of it. Bad uploads get 400 and change nothing.
func TestRuler(t *testing.T) {
	bin := strataBin(t)
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-auth.multitenancy-enabled", "-ruler.poll-interval=1s",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := newClient(s.URL, "team-a"), newClient(s.URL, "team-b")

	// Data first, so that the first evaluation sees it.
	now := time.Now()
	body := write(
		series1(now.UnixMilli(), 0.5, "__name__", "ml_accuracy", "job", "model", "instance", "i1"),
		series1(now.UnixMilli(), 0.7, "__name__", "ml_accuracy", "job", "model", "instance", "i2"),
	)
	ans, err := a.push(ctx, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, ans.Status, ans.text())

	ans, err = a.do(ctx, http.MethodPost, "/config/v1/rules/ml", nil, map[string]string{"Content-Type": "application/yaml"}, []byte(rulerGroup))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, ans.Status, ans.text())

	// The recording rule's series, at its own timestamp, equals the
	// expression evaluated there.
	var at time.Time
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		r, err := a.query(ctx, `timestamp(job:ml_accuracy:avg)`, time.Now())
		if err != nil || len(r.Series) != 1 {
			return false, fmt.Sprintf("no recorded series yet (%v, %v)", r.Series, err)
		}
		at = time.UnixMilli(int64(math.Round(r.Series[0].Points[0].V * 1000)))
		return true, ""
	}))
	rec, err := a.query(ctx, `job:ml_accuracy:avg`, at)
	require.NoError(t, err)
	direct, err := a.query(ctx, `avg by (job) (ml_accuracy)`, at)
	require.NoError(t, err)
	require.Len(t, rec.Series, 1)
	require.Len(t, direct.Series, 1)
	require.Equal(t, `{__name__="job:ml_accuracy:avg", job="model"}`, rec.Series[0].Labels.String())
	require.Equal(t, direct.Series[0].Points[0].V, rec.Series[0].Points[0].V)

	// The alert goes pending, then fires.
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		var al alertsAnswer
		getJSON(ctx, t, a, "/prometheus/api/v1/alerts", &al)
		if len(al.Alerts) != 1 || al.Alerts[0].State != "firing" {
			return false, fmt.Sprintf("alerts %+v", al.Alerts)
		}
		got := al.Alerts[0]
		require.Equal(t, map[string]string{"alertname": "AccuracyLow", "job": "model", "severity": "page"}, got.Labels)
		require.Equal(t, "accuracy of model is 0.6", got.Annotations["summary"])
		require.NotNil(t, got.ActiveAt)
		return true, ""
	}))
	// ALERTS is written back like any recording rule result.
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		r, err := a.query(ctx, `ALERTS{alertname="AccuracyLow", alertstate="firing"}`, time.Now())
		return err == nil && len(r.Series) == 1, fmt.Sprintf("ALERTS: %v %v", r.Series, err)
	}))
	var rules rulesAnswer
	getJSON(ctx, t, a, "/api/v1/rules", &rules)
	require.Len(t, rules.Groups, 1)
	require.Equal(t, "ml", rules.Groups[0].File)
	require.Len(t, rules.Groups[0].Rules, 2)
	for _, r := range rules.Groups[0].Rules {
		require.Equal(t, "ok", r.Health, "%s: %s", r.Name, r.LastError)
	}
	getJSON(ctx, t, a, "/prometheus/api/v1/rules?type=alert", &rules)
	require.Len(t, rules.Groups[0].Rules, 1)
	require.Equal(t, "alerting", rules.Groups[0].Rules[0].Type)

	// Isolation: tenant B sees no rules, no alerts, no results.
	ans, err = b.do(ctx, http.MethodGet, "/config/v1/rules", nil, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, ans.Status, ans.text())
	ans, err = b.do(ctx, http.MethodGet, "/config/v1/rules/ml/accuracy", nil, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, ans.Status, ans.text())
	getJSON(ctx, t, b, "/api/v1/rules", &rules)
	require.Empty(t, rules.Groups)
	var al alertsAnswer
	getJSON(ctx, t, b, "/prometheus/api/v1/alerts", &al)
	require.Empty(t, al.Alerts)
	r, err := b.query(ctx, `{__name__=~"job:.*|ALERTS.*"}`, time.Now())
	require.NoError(t, err)
	require.Empty(t, r.Series)
	ans, err = b.do(ctx, http.MethodDelete, "/config/v1/rules/ml", nil, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, ans.Status, "B deleting A's namespace: %s", ans.text())

	testRulerGrafana(ctx, t, a)
	testRulerBadInput(ctx, t, a)
}

// testRulerGrafana walks Grafana's detection (buildInfo.ts): buildinfo,
// then /api/v1/status/flags, then a probe of the rule config API whose 404
// means "supported, no such group"; and the paths of its proxy.
func testRulerGrafana(ctx context.Context, t *testing.T, a *client) {
	var bi struct {
		Application string
		Features    map[string]string
	}
	getJSON(ctx, t, a, "/prometheus/api/v1/status/buildinfo", &bi)
	require.Equal(t, "Strata", bi.Application)
	require.Equal(t, "true", bi.Features["ruler_config_api"])
	var flags map[string]string
	getJSON(ctx, t, a, "/api/v1/status/flags", &flags)
	require.NotEmpty(t, flags)
	ans, err := a.do(ctx, http.MethodGet, "/config/v1/rules/test/test", nil, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, ans.Status)
	require.Equal(t, "group does not exist", strings.TrimSpace(ans.text()))
	for _, p := range []string{"/config/v1/rules/ml", "/rules/ml", "/prometheus/config/v1/rules/ml/accuracy"} {
		b, err := a.ok(ctx, http.MethodGet, p, nil, nil)
		require.NoError(t, err, p)
		require.Contains(t, string(b), "job:ml_accuracy:avg", p)
	}
	r, err := a.result(ctx, "/prometheus/api/v1/query", queryParams("job:ml_accuracy:avg", time.Now()))
	require.NoError(t, err)
	require.Len(t, r.Series, 1)
}

func testRulerBadInput(ctx context.Context, t *testing.T, a *client) {
	before, err := a.ok(ctx, http.MethodGet, "/config/v1/rules", nil, nil)
	require.NoError(t, err)
	var many strings.Builder
	many.WriteString("name: many\nrules:\n")
	for i := range 21 {
		fmt.Fprintf(&many, "- record: r%d\n  expr: vector(1)\n", i)
	}
	yamlHdr := map[string]string{"Content-Type": "application/yaml"}
	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"malformed yaml", "/config/v1/rules/ml", "name: [x\n", "parse rule group"},
		{"unknown field", "/config/v1/rules/ml", "name: g\nrulez: []\n", "field rulez not found"},
		{"bad expression", "/config/v1/rules/ml", "name: g\nrules:\n- record: r\n  expr: sum(\n", `rule 1, "r"`},
		{"bad template", "/config/v1/rules/ml", "name: g\nrules:\n- alert: A\n  expr: up\n  annotations: {x: '{{ .Foo'}\n", "template"},
		{"no name", "/config/v1/rules/ml", "rules: []\n", "group name is empty"},
		{"group dot dot", "/config/v1/rules/ml", "name: ..\nrules: []\n", `group name ".." is not allowed`},
		{"group slash", "/config/v1/rules/ml", "name: a/b\nrules: []\n", "contains '/'"},
		{"namespace slash", "/config/v1/rules/a%2Fb", rulerGroup, "contains '/'"},
		{"namespace dot dot", "/config/v1/rules/%2E%2E%2F", rulerGroup, "namespace name"},
		{"namespace 10kB", "/config/v1/rules/" + strings.Repeat("n", 10_000), rulerGroup, "10000 bytes long"},
		{"two documents", "/config/v1/rules/ml", rulerGroup + "---\n" + rulerGroup, "more than one YAML document"},
		{"over the rules limit", "/config/v1/rules/ml", many.String(), "ruler_max_rules_per_rule_group"},
	} {
		ans, err := a.do(ctx, http.MethodPost, tc.path, nil, yamlHdr, []byte(tc.body))
		require.NoError(t, err, tc.name)
		require.Equal(t, http.StatusBadRequest, ans.Status, "%s: %s", tc.name, ans.text())
		require.Contains(t, errorText(ans.text()), tc.want, tc.name)
	}
	for _, path := range []string{"/config/v1/rules/a%2Fb", "/config/v1/rules/ml/..%2F", "/config/v1/rules/" + url.PathEscape(strings.Repeat("x", 10_000))} {
		ans, err := a.do(ctx, http.MethodGet, path, nil, nil, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, ans.Status, "GET %s: %s", path[:min(len(path), 60)], ans.text())
	}
	after, err := a.ok(ctx, http.MethodGet, "/config/v1/rules", nil, nil)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "a refused upload changed the stored rules")
	var m map[string]any
	require.Error(t, json.Unmarshal(after, &m)) // YAML, not JSON
}

// TestRulerRulePath: with -ruler.rule-path the ruler evaluates the rule
// files of a directory (single tenant), and the config API refuses
// changes.
func TestRulerRulePath(t *testing.T) {
	bin := strataBin(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ml.yaml"), []byte("groups:\n- name: file-group\n  interval: 1s\n  rules:\n  - record: from_file\n    expr: vector(42)\n"), 0o644))
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{"-ruler.rule-path=" + dir, "-ruler.poll-interval=1s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newClient(s.URL)
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		r, err := c.query(ctx, "from_file", time.Now())
		return err == nil && len(r.Series) == 1 && r.Series[0].Points[0].V == 42, fmt.Sprintf("%v %v", r.Series, err)
	}))
	var rules rulesAnswer
	getJSON(ctx, t, c, "/api/v1/rules", &rules)
	require.Len(t, rules.Groups, 1)
	require.Equal(t, "ml.yaml", rules.Groups[0].File)
	ans, err := c.do(ctx, http.MethodPost, "/config/v1/rules/ml.yaml", nil, map[string]string{"Content-Type": "application/yaml"}, []byte(rulerGroup))
	require.NoError(t, err)
	require.Equal(t, http.StatusMethodNotAllowed, ans.Status, ans.text())
	require.Contains(t, errorText(ans.text()), "-ruler.rule-path")
}
