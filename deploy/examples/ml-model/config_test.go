package main

import (
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	pmodel "github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/limits"
)

const dashboardPath = "grafana/dashboards/ml-model.json"

// panelQuery is one query of a dashboard panel.
type panelQuery struct {
	panel, refID, expr string
}

// dashboardQueries reads every query of the dashboard, with Grafana's
// variables replaced as Grafana does before sending it: $__rate_interval by
// rateInterval. Any other variable fails the test (the e2e test could not
// run the query).
func dashboardQueries(t *testing.T, rateInterval string) []panelQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	type panel struct {
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"` // a row's panels
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	var out []panelQuery
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			walk(p.Panels)
			if len(p.Targets) == 0 {
				continue
			}
			require.Equal(t, "prometheus", p.Datasource.Type, "panel %q", p.Title)
			require.Equal(t, "strata", p.Datasource.UID, "panel %q: the provisioned data source", p.Title)
			for _, tg := range p.Targets {
				expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", rateInterval)
				require.NotContains(t, expr, "$", "panel %q query %s: a Grafana variable the tests do not know", p.Title, tg.RefID)
				out = append(out, panelQuery{panel: p.Title, refID: tg.RefID, expr: expr})
			}
		}
	}
	walk(dash.Panels)
	return out
}

// TestDashboardQueriesParse: every panel query is PromQL, and the panels
// the quickstart promises are there.
func TestDashboardQueriesParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	queries := dashboardQueries(t, "1m")
	var titles []string
	for _, q := range queries {
		_, err := p.ParseExpr(q.expr)
		require.NoError(t, err, "panel %q query %s: %s", q.panel, q.refID, q.expr)
		titles = append(titles, strings.ToLower(q.panel))
	}
	for _, want := range []string{"latency", "accuracy", "predictions per hour", "error rate"} {
		require.True(t, slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }), "no panel about %q in %v", want, titles)
	}
}

// TestRulesFile: rules.yml is a valid rule file whose expressions parse, with
// the recording rules and alerts the README names; promtool (Debian's
// prometheus package) agrees; each group starts where upload-rules.sh
// splits the file.
func TestRulesFile(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("rules.yml", false, pmodel.UTF8Validation, p, slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	require.Len(t, groups.Groups, 1)
	b, err := os.ReadFile("rules.yml")
	require.NoError(t, err)
	require.Len(t, regexp.MustCompile(`(?m)^  - name: `).FindAll(b, -1), len(groups.Groups),
		"upload-rules.sh sends the lines from one \"  - name:\" to the next as one group")
	got := map[string]rulefmt.Rule{}
	for _, r := range groups.Groups[0].Rules {
		_, err := p.ParseExpr(r.Expr)
		require.NoError(t, err, "%s%s", r.Record, r.Alert)
		got[r.Record+r.Alert] = r
	}
	for _, name := range []string{"job:prediction_count:rate1m", "job:model_inference_time_seconds:p99_rate1m"} {
		require.Contains(t, got, name)
	}
	for _, name := range []string{"ModelAccuracyLow", "ModelInferenceLatencyHigh"} {
		require.Contains(t, got, name)
		require.Equal(t, pmodel.Duration(time.Minute), got[name].For, name)
	}
	require.Contains(t, got["ModelAccuracyLow"].Expr, "model_accuracy < 0.8")
	require.Contains(t, got["ModelInferenceLatencyHigh"].Expr, "> 1")

	promtool := procs.LookPathT(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "rules", "rules.yml").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestPrometheusConfig: prometheus.yml loads in the Prometheus library and
// in Debian's promtool, scrapes the service every 5s and remote-writes to
// Strata with the tenant header, and evaluates no rules (Strata's ruler
// does; in both, every rule would run twice).
func TestPrometheusConfig(t *testing.T) {
	cfg, err := promconfig.LoadFile("prometheus.yml", false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, pmodel.Duration(5*time.Second), cfg.GlobalConfig.ScrapeInterval)
	require.Len(t, cfg.ScrapeConfigs, 1)
	require.Len(t, cfg.RemoteWriteConfigs, 1)
	rw := cfg.RemoteWriteConfigs[0]
	require.Equal(t, "http://strata:9009/api/v1/push", rw.URL.String())
	require.Equal(t, "ml-team", rw.Headers["X-Scope-OrgID"])

	require.Empty(t, cfg.RuleFiles)
	require.Empty(t, cfg.AlertingConfig.AlertmanagerConfigs)

	promtool := procs.LookPathT(t, "promtool", "prometheus")
	out, err := exec.Command(promtool, "check", "config", "prometheus.yml").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestAlertmanagerConfig: amtool (Debian's prometheus-alertmanager) accepts
// alertmanager.yml.
func TestAlertmanagerConfig(t *testing.T) {
	amtool := procs.LookPathT(t, "amtool", "prometheus-alertmanager")
	out, err := exec.Command(amtool, "check-config", "alertmanager.yml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "SUCCESS")
}

// TestComposeFiles: every file docker-compose.yml mounts exists, the
// services the README names are there, Strata runs with the overrides of
// overrides.yml (and no Alertmanager URL: alerts go to its own), the rules
// and alertmanager-config services upload rules.yml and alertmanager.yml
// as the tenant Prometheus writes as, and Grafana's data sources point at
// the Strata service: its Prometheus API (no /prometheus prefix) and its
// Alertmanager (implementation Mimir).
func TestComposeFiles(t *testing.T) {
	type service struct {
		Volumes    []string `yaml:"volumes"`
		Entrypoint []string `yaml:"entrypoint"`
		Command    []string `yaml:"command"`
		Build      struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
	}
	readYAML(t, "docker-compose.yml", &compose)
	for _, s := range []string{"strata", "rules", "alertmanager-config", "ml-model", "prometheus", "grafana"} {
		require.Contains(t, compose.Services, s)
	}
	require.NotContains(t, compose.Services, "alertmanager", "Strata's built-in Alertmanager replaces it")
	strata := compose.Services["strata"]
	for _, arg := range strata.Command {
		require.NotContains(t, arg, "-ruler.alertmanager-url", "without an Alertmanager URL the ruler sends to Strata's own")
	}
	require.Contains(t, strata.Command, "-runtime-config.file=/etc/strata/overrides.yml")
	require.Contains(t, strata.Volumes, "./overrides.yml:/etc/strata/overrides.yml:ro")
	rules := compose.Services["rules"]
	require.Equal(t, []string{"/bin/sh", "/upload-rules.sh"}, rules.Entrypoint)
	require.Equal(t, []string{"/rules.yml", "http://strata:9009", "ml-team"}, rules.Command)
	require.Subset(t, rules.Volumes, []string{"./upload-rules.sh:/upload-rules.sh:ro", "./rules.yml:/rules.yml:ro"})
	amc := compose.Services["alertmanager-config"]
	require.Equal(t, []string{"/bin/sh", "/upload-alertmanager.sh"}, amc.Entrypoint)
	require.Equal(t, []string{"/alertmanager.yml", "http://strata:9009", "ml-team"}, amc.Command)
	require.Subset(t, amc.Volumes, []string{"./upload-alertmanager.sh:/upload-alertmanager.sh:ro", "./alertmanager.yml:/alertmanager.yml:ro"})
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				_, err := os.Stat(src)
				require.NoError(t, err, "service %s mounts %s", name, v)
			}
		}
		if s.Build.Dockerfile != "" {
			_, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile))
			require.NoError(t, err, "service %s builds from %s", name, s.Build.Dockerfile)
		}
	}

	type datasource struct {
		UID      string            `yaml:"uid"`
		Type     string            `yaml:"type"`
		URL      string            `yaml:"url"`
		JSONData map[string]any    `yaml:"jsonData"`
		Secure   map[string]string `yaml:"secureJsonData"`
	}
	var ds struct {
		Datasources []datasource `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/strata.yml", &ds)
	i := slices.IndexFunc(ds.Datasources, func(d datasource) bool { return d.UID == "strata" })
	require.GreaterOrEqual(t, i, 0, "a data source with the uid the panels use")
	require.Equal(t, "prometheus", ds.Datasources[i].Type)
	require.Equal(t, "http://strata:9009", ds.Datasources[i].URL)
	require.Equal(t, "X-Scope-OrgID", ds.Datasources[i].JSONData["httpHeaderName1"])
	require.Equal(t, "ml-team", ds.Datasources[i].Secure["httpHeaderValue1"], "the tenant prometheus.yml writes as")
	i = slices.IndexFunc(ds.Datasources, func(d datasource) bool { return d.Type == "alertmanager" })
	require.GreaterOrEqual(t, i, 0, "an Alertmanager data source")
	require.Equal(t, "http://strata:9009", ds.Datasources[i].URL)
	require.Equal(t, "mimir", ds.Datasources[i].JSONData["implementation"])
	require.Equal(t, "X-Scope-OrgID", ds.Datasources[i].JSONData["httpHeaderName1"])
	require.Equal(t, "ml-team", ds.Datasources[i].Secure["httpHeaderValue1"])
}

// TestOverrides: overrides.yml is a runtime config Strata loads, giving
// tenant ml-team's alerts a tenant label, leaving them to go to Strata's
// own Alertmanager (no Alertmanager URL), and letting its receivers reach the example service's
// private address.
func TestOverrides(t *testing.T) {
	b, err := os.ReadFile("overrides.yml")
	require.NoError(t, err)
	var defaults limits.Limits
	defaults.RegisterFlags(flag.NewFlagSet("strata", flag.ContinueOnError))
	tenants, err := limits.ParseOverrides(b, defaults)
	require.NoError(t, err)
	require.Contains(t, tenants, "ml-team")
	require.Equal(t, map[string]string{"tenant": "ml-team"}, tenants["ml-team"].RulerExternalLabels.Map())
	require.Empty(t, tenants["ml-team"].RulerAlertmanagerURL, "the ruler's default, Strata's own Alertmanager")
	require.True(t, tenants["ml-team"].AlertmanagerReceiversAllowPrivate)
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}
