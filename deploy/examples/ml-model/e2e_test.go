package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/internal/procs"
)

// The test's copy of rules.yml differs from it in three fields only
// (testRules): a group interval and alert `for` short enough for a test,
// and a query offset.
const (
	testRuleInterval = "2s"
	testAlertFor     = "5s"
	// testQueryOffset: the ruler evaluates each rule this far in the past
	// and stamps the recorded samples with that time. Debian's Prometheus
	// remote-writes in batches that wait up to 5s (batch_send_deadline), so
	// the newest samples before an evaluation may still be on their way;
	// 15s later every sample up to the evaluation time has arrived, and a
	// recorded value must equal its expression evaluated afterwards at the
	// same time (TestQuickstartEndToEnd). Not in rules.yml: the promtool
	// of Debian's Prometheus 2.42 does not know query_offset, and a
	// quickstart's alert need not wait.
	testQueryOffset = "15s"
)

// TestQuickstartEndToEnd runs run-local.sh, what `make example-ml` runs,
// with real processes: the built strata, whose ruler evaluates the example's
// rules (uploaded by upload-rules.sh through /config/v1/rules, see
// testRules) and sends its alerts to Strata's built-in Alertmanager
// (the ruler's default when no Alertmanager URL is set), the example service, and
// Debian's prometheus with this folder's prometheus.yml (host names
// rewritten to loopback ports, 1s scrapes). run-local.sh uploads the
// example's alertmanager.yml to Strata with upload-alertmanager.sh, its
// webhook receiver pointed at a server in this test on loopback
// (testAlertmanagerConfig), which overrides.yml's
// alertmanager_receivers_firewall_allow_private lets it reach.
//
// Every dashboard query must return data from Strata; so must every
// recording rule, equal to its expression evaluated directly at the
// ruler's evaluation time. After POST /drift?level=0.8 the ModelAccuracyLow
// alert must fire in Strata's /api/v1/alerts and reach the webhook through
// Strata's Alertmanager with the tenant's label from overrides.yml.
func TestQuickstartEndToEnd(t *testing.T) {
	procs.LookPathT(t, "prometheus", "prometheus")
	dir := t.TempDir()
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	hook := newWebhookReceiver(t)
	rulesFile, wantGroup := testRules(t, dir)
	strataBin, err := procs.BuildStrata(dir)
	require.NoError(t, err)
	step("strata built")
	ports := map[string]int{}
	env := []string{"STRATA_BIN=" + strataBin, "SCRAPE_INTERVAL=1s", "LOAD_RATE=50", "TMPDIR=" + dir,
		"RULES=" + rulesFile, "AM_CONFIG=" + testAlertmanagerConfig(t, dir, hook.url)}
	for _, name := range []string{"STRATA_PORT", "STRATA_GRPC_PORT", "STRATA_GOSSIP_PORT", "MODEL_PORT", "PROM_PORT"} {
		p, err := procs.FreePort()
		require.NoError(t, err)
		ports[name] = p
		env = append(env, fmt.Sprintf("%s=%d", name, p))
	}
	script, err := filepath.Abs("run-local.sh")
	require.NoError(t, err)
	run := procs.StartT(t, procs.Spec{Name: "run-local", Path: script, Dir: dir, Env: env})
	// The script stops its children on SIGTERM, Prometheus first (it flushes
	// to Strata); give it the time before procs' own cleanup kills it.
	t.Cleanup(func() {
		if err := run.Stop(time.Minute); err != nil {
			t.Errorf("stop run-local.sh: %v", err)
		}
	})
	strataURL := fmt.Sprintf("http://127.0.0.1:%d", ports["STRATA_PORT"])
	promURL := fmt.Sprintf("http://127.0.0.1:%d", ports["PROM_PORT"])
	procs.WaitHTTPT(t, run, promURL+"/-/ready", 2*time.Minute) // run-local.sh starts Prometheus last
	step("run-local.sh ready")

	// The config Prometheus runs is the rewritten one, and it evaluates no
	// rules: they live in Strata.
	cfg := string(httpGet(t, promURL+"/api/v1/status/config"))
	for _, want := range []string{"scrape_interval: 1s", fmt.Sprintf("127.0.0.1:%d", ports["MODEL_PORT"]), strataURL + "/api/v1/push"} {
		require.Contains(t, cfg, want)
	}
	require.NotContains(t, cfg, "rule_files")
	// The group Strata stores is the test's copy of rules.yml, whole.
	var stored rulefmt.RuleGroup
	require.NoError(t, yaml.Unmarshal(httpGet(t, strataURL+"/config/v1/rules/ml-model/"+wantGroup.Name), &stored))
	require.Equal(t, wantGroup, stored)
	// A group the ruler refuses: upload-rules.sh fails with its reason, and
	// the stored group stays as it was.
	b, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(b), "expr: model_accuracy < 0.8\n"))
	badRules := filepath.Join(dir, "rules-bad.yml")
	require.NoError(t, os.WriteFile(badRules, []byte(strings.Replace(string(b), "expr: model_accuracy < 0.8\n", "expr: model_accuracy <\n", 1)), 0o644))
	out, err := exec.Command("./upload-rules.sh", badRules, strataURL).CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), "HTTP 400")
	require.Contains(t, string(out), "ModelAccuracyLow", "the reason names the rule")
	require.Contains(t, string(out), "parse error")
	stored = rulefmt.RuleGroup{}
	require.NoError(t, yaml.Unmarshal(httpGet(t, strataURL+"/config/v1/rules/ml-model/"+wantGroup.Name), &stored))
	require.Equal(t, wantGroup, stored)
	// The Alertmanager configuration Strata stores is the test's copy of
	// alertmanager.yml, whole, as upload-alertmanager.sh sent it.
	amConfig, err := os.ReadFile(filepath.Join(dir, "alertmanager-test.yml"))
	require.NoError(t, err)
	var storedAM struct {
		AlertmanagerConfig string `yaml:"alertmanager_config"`
	}
	require.NoError(t, yaml.Unmarshal(httpGet(t, strataURL+"/api/v1/alerts"), &storedAM))
	require.Equal(t, string(amConfig), storedAM.AlertmanagerConfig)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, q := range dashboardQueries(t, "15s") {
		err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			return hasFiniteSample(ctx, strataURL, q.expr)
		})
		require.NoError(t, err, "panel %q query %s: %s", q.panel, q.refID, q.expr)
	}
	step("dashboard queries answered")
	for _, r := range wantGroup.Rules {
		if r.Record != "" {
			requireRecordedAsEvaluated(ctx, t, strataURL, r)
		}
	}
	step("recording rules equal their expressions")

	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/drift?level=0.8", ports["MODEL_PORT"]), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	drifted := time.Now()

	// The model needs a few seconds of feedback to fall below 80%, the
	// samples up to 5s to reach Strata, the ruler the query offset, two
	// intervals and `for`, the Alertmanager its group_wait: about 30s.
	ctx, cancel = context.WithTimeout(t.Context(), 75*time.Second)
	defer cancel()
	var got webhookAlert
	err = procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var ok bool
		got, ok = hook.firing("ModelAccuracyLow", drifted)
		return ok, "no firing ModelAccuracyLow active since the drift at the webhook; it got: " + hook.String()
	})
	require.NoError(t, err, "Strata's alerts: %s", httpGet(t, strataURL+"/prometheus/api/v1/alerts"))
	step(fmt.Sprintf("webhook got ModelAccuracyLow %.1fs after the drift", time.Since(drifted).Seconds()))
	// The rule's labels, the series', and the tenant's external label
	// (overrides.yml, rewritten by run-local.sh for tenant anonymous).
	instance := fmt.Sprintf("127.0.0.1:%d", ports["MODEL_PORT"])
	require.Equal(t, map[string]string{
		"alertname": "ModelAccuracyLow", "severity": "warning", "tenant": "anonymous",
		"job": "ml-model", "instance": instance,
	}, got.Labels)
	require.Contains(t, got.Annotations["summary"], "Model accuracy of "+instance+" is ", "the template, rendered")

	alert, err := firingAlert(ctx, strataURL, "ModelAccuracyLow")
	require.NoError(t, err)
	v, err := strconv.ParseFloat(alert.Value, 64)
	require.NoError(t, err)
	require.Less(t, v, 0.8, "the alert's value is the accuracy")
	step("firing in /api/v1/alerts")

	// The notification went through Strata's own Alertmanager: it holds
	// the alert and counts the webhook's notification.
	require.Contains(t, string(httpGet(t, strataURL+"/alertmanager/api/v2/alerts?filter=alertname%3D%22ModelAccuracyLow%22")), `"tenant":"anonymous"`)
	require.Regexp(t, `strata_alertmanager_notifications_total\{integration="webhook",[^}]*tenant="anonymous"\} [1-9]`, string(httpGet(t, strataURL+"/metrics")))
}

// testRules writes the test's copy of rules.yml to dir: the group's
// interval testRuleInterval plus testQueryOffset, every alert's `for`
// testAlertFor, so that alerts fire in seconds rather than minutes.
// Nothing else differs (checked here). It returns the file and its group.
func testRules(t *testing.T, dir string) (string, rulefmt.RuleGroup) {
	t.Helper()
	b, err := os.ReadFile("rules.yml")
	require.NoError(t, err)
	text := string(b)
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{"\n    interval: 15s\n", "\n    interval: " + testRuleInterval + "\n    query_offset: " + testQueryOffset + "\n", 1},
		{"\n        for: 1m\n", "\n        for: " + testAlertFor + "\n", 2},
	} {
		require.Equal(t, r.n, strings.Count(text, r.old), "rules.yml: %q", r.old)
		text = strings.ReplaceAll(text, r.old, r.new)
	}
	path := filepath.Join(dir, "rules-test.yml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))

	p := parser.NewParser(parser.Options{})
	parse := func(file string) rulefmt.RuleGroup {
		groups, errs := rulefmt.ParseFile(file, false, pmodel.UTF8Validation, p, slog.New(slog.DiscardHandler))
		require.Empty(t, errs, file)
		require.Len(t, groups.Groups, 1, file)
		return groups.Groups[0]
	}
	orig, test := parse("rules.yml"), parse(path)
	mustDuration := func(s string) pmodel.Duration {
		d, err := pmodel.ParseDuration(s)
		require.NoError(t, err)
		return d
	}
	offset := mustDuration(testQueryOffset)
	orig.Interval, orig.QueryOffset = mustDuration(testRuleInterval), &offset
	for i := range orig.Rules {
		if orig.Rules[i].Alert != "" {
			orig.Rules[i].For = mustDuration(testAlertFor)
		}
	}
	require.Equal(t, orig, test, "the test's rules differ from rules.yml in more than interval, query_offset and for")
	return path, test
}

// testAlertmanagerConfig writes the example's alertmanager.yml to dir with
// the webhook receiver's URL replaced by webhookURL and a group_wait of 1s
// instead of 10s (the wait for more alerts of a group before the first
// notification).
func testAlertmanagerConfig(t *testing.T, dir, webhookURL string) string {
	t.Helper()
	b, err := os.ReadFile("alertmanager.yml")
	require.NoError(t, err)
	text := string(b)
	for _, r := range [][2]string{
		{"url: http://ml-model:8080/webhook\n", "url: " + webhookURL + "\n"},
		{"group_wait: 10s\n", "group_wait: 1s\n"},
	} {
		require.Equal(t, 1, strings.Count(text, r[0]), "alertmanager.yml: %q", r[0])
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	path := filepath.Join(dir, "alertmanager-test.yml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// webhookAlert is one alert of an Alertmanager webhook notification.
type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

// webhookReceiver is the test's Alertmanager webhook receiver: an HTTP
// server on 127.0.0.1 that keeps every alert it is sent.
type webhookReceiver struct {
	url    string
	mu     sync.Mutex
	alerts []webhookAlert
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	h := &webhookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var msg struct {
			Version string         `json:"version"`
			Alerts  []webhookAlert `json:"alerts"`
		}
		body, err := io.ReadAll(req.Body)
		if err == nil {
			err = json.Unmarshal(body, &msg)
		}
		if err != nil || msg.Version != "4" {
			http.Error(w, fmt.Sprintf("not an Alertmanager webhook notification (version 4): %v: %s", err, body), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.alerts = append(h.alerts, msg.Alerts...)
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/webhook"
	return h
}

// firing returns the first firing alert named name received that became
// active after since (not one of a noisy start).
func (h *webhookReceiver) firing(name string, since time.Time) (webhookAlert, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := slices.IndexFunc(h.alerts, func(a webhookAlert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == name && a.StartsAt.After(since)
	})
	if i < 0 {
		return webhookAlert{}, false
	}
	return h.alerts[i], true
}

// String lists the alerts received, for a failure message.
func (h *webhookReceiver) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.alerts) == 0 {
		return "nothing"
	}
	s := make([]string, len(h.alerts))
	for i, a := range h.alerts {
		s[i] = fmt.Sprintf("%s since %s %v", a.Status, a.StartsAt.Format(time.RFC3339Nano), a.Labels)
	}
	return strings.Join(s, "; ")
}

// requireRecordedAsEvaluated waits for r's recorded series in Strata, takes
// their newest sample, written at the ruler's evaluation time T (the query
// time: the group's query offset before the evaluation), and requires the
// same series with the same values from r's expression evaluated directly
// at T.
//
// The values are computed by the same engine over the same samples (every
// sample up to T had arrived when the ruler evaluated: testQueryOffset),
// so they should be equal to the bit. The tolerance, a relative 1e-9, only
// admits a float sum taken in another order (sum by over series), which
// changes these values (a few terms of magnitude 1e-3 to 1e2) by at most a
// few ulps, about 1e-15 relative.
func requireRecordedAsEvaluated(ctx context.Context, t *testing.T, strataURL string, r rulefmt.Rule) {
	t.Helper()
	var rec promData
	err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var err error
		rec, err = query(ctx, strataURL, r.Record+"[30s]", "")
		switch {
		case err != nil:
			return false, err.Error()
		case rec.ResultType != "matrix" || len(rec.Result) == 0:
			return false, fmt.Sprintf("no recorded samples yet: %+v", rec)
		}
		return true, ""
	})
	require.NoError(t, err, "recording rule %s", r.Record)
	var ts float64 // T: the newest sample's time; one evaluation writes all series at one time
	for _, s := range rec.Result {
		require.NotEmpty(t, s.Values, "%s %v", r.Record, s.Metric)
		ts = max(ts, s.Values[len(s.Values)-1].time())
	}
	recorded := map[string]float64{}
	for _, s := range rec.Result {
		if last := s.Values[len(s.Values)-1]; last.time() == ts {
			require.Equal(t, r.Record, s.Metric["__name__"])
			delete(s.Metric, "__name__")
			recorded[labelsKey(s.Metric)] = last.value(t)
		}
	}
	at := strconv.FormatFloat(ts, 'f', 3, 64)
	direct, err := query(ctx, strataURL, r.Expr, at)
	require.NoError(t, err, "%s at %s", r.Expr, at)
	require.Equal(t, "vector", direct.ResultType)
	evaluated := map[string]float64{}
	for _, s := range direct.Result {
		require.Equal(t, ts, s.Value.time(), "%s at %s", r.Expr, at)
		evaluated[labelsKey(s.Metric)] = s.Value.value(t)
	}
	require.Equal(t, slices.Sorted(maps.Keys(evaluated)), slices.Sorted(maps.Keys(recorded)), "%s at %s: series", r.Record, at)
	for k, want := range evaluated {
		got := recorded[k]
		if math.IsNaN(want) {
			require.True(t, math.IsNaN(got), "%s%s at %s: recorded %v, evaluated NaN", r.Record, k, at, got)
			continue
		}
		require.LessOrEqual(t, math.Abs(got-want), 1e-9*max(math.Abs(want), math.Abs(got)),
			"%s%s at %s: recorded %v, evaluated %v", r.Record, k, at, got, want)
	}
}

func labelsKey(m map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// promSample is [time in seconds, "value"], as Prometheus' API writes it.
type promSample [2]any

func (s promSample) time() float64 { f, _ := s[0].(float64); return f }

func (s promSample) value(t *testing.T) float64 {
	str, _ := s[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	require.NoError(t, err, "sample %v", s)
	return f
}

// promData is the data of a query answer: a vector (Value) or matrix (Values).
type promData struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  promSample        `json:"value"`
		Values []promSample      `json:"values"`
	} `json:"result"`
}

// query runs an instant query against Strata's Prometheus API, at time at
// ("" for now).
func query(ctx context.Context, strataURL, expr, at string) (promData, error) {
	v := url.Values{"query": {expr}}
	if at != "" {
		v.Set("time", at)
	}
	var r struct {
		Status string   `json:"status"`
		Data   promData `json:"data"`
	}
	err := getJSON(ctx, strataURL+"/api/v1/query?"+v.Encode(), &r)
	if err == nil && r.Status != "success" {
		err = fmt.Errorf("status %q", r.Status)
	}
	return r.Data, err
}

// hasFiniteSample runs an instant query against Strata's Prometheus API and
// reports whether it returned at least one sample, all finite; otherwise it
// says what it got.
func hasFiniteSample(ctx context.Context, strataURL, expr string) (bool, string) {
	r, err := query(ctx, strataURL, expr, "")
	switch {
	case err != nil:
		return false, err.Error()
	case r.ResultType != "vector":
		return false, "result type " + r.ResultType
	case len(r.Result) == 0:
		return false, "no series yet"
	}
	for _, s := range r.Result {
		str, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return false, fmt.Sprintf("not a finite number: %v %v", s.Metric, s.Value)
		}
	}
	return true, ""
}

// strataAlert is one alert of /api/v1/alerts.
type strataAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Value  string            `json:"value"`
}

// firingAlert waits until Strata's /api/v1/alerts lists a firing alert
// named name and returns it.
func firingAlert(ctx context.Context, strataURL, name string) (strataAlert, error) {
	var found strataAlert
	err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var r struct {
			Status string `json:"status"`
			Data   struct {
				Alerts []strataAlert `json:"alerts"`
			} `json:"data"`
		}
		if err := getJSON(ctx, strataURL+"/prometheus/api/v1/alerts", &r); err != nil {
			return false, err.Error()
		}
		for _, a := range r.Data.Alerts {
			if a.Labels["alertname"] == name && a.State == "firing" {
				found = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("no firing %s in %+v", name, r.Data.Alerts)
	})
	return found, err
}

// getJSON decodes the 200 answer of a GET into v.
func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", u, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w: %s", u, err, body)
	}
	return nil
}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", u, body)
	return body
}
