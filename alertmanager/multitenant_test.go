package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/bucket"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Upstream's HTTP clients keep idle connections to the test receivers.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func defaultLimits(t testing.TB, args ...string) *limits.Limits {
	var l limits.Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l.RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	return &l
}

// hookServer records the webhook notifications it gets.
type hookServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []webhookMsg
}

type webhookMsg struct {
	Receiver string `json:"receiver"`
	Alerts   []struct {
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func newReceiver(t *testing.T) *hookServer {
	r := &hookServer{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m webhookMsg
		if err := json.NewDecoder(req.Body).Decode(&m); err == nil {
			r.mu.Lock()
			r.got = append(r.got, m)
			r.mu.Unlock()
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookServer) messages() []webhookMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookMsg(nil), r.got...)
}

// alertnames are the alertnames r was notified of.
func (r *hookServer) alertnames() map[string]bool {
	out := map[string]bool{}
	for _, m := range r.messages() {
		for _, a := range m.Alerts {
			out[a.Labels["alertname"]] = true
		}
	}
	return out
}

type harness struct {
	t   *testing.T
	am  *MultitenantAlertmanager
	bkt objstore.Bucket
	cfg http.Handler
	api http.Handler
}

func newHarness(t *testing.T, lim *limits.Limits) *harness {
	t.Helper()
	return newReplica(t, lim, objstore.NewInMemBucket(), "")
}

// newReplica runs an Alertmanager named id on bkt, without a ring.
func newReplica(t *testing.T, lim *limits.Limits, bkt objstore.Bucket, id string) *harness {
	t.Helper()
	return newReplicaArgs(t, lim, bkt, "-instance.id="+id)
}

// newReplicaArgs runs an Alertmanager on bkt with flags args (and
// -instance.id, which names it), without a ring.
func newReplicaArgs(t *testing.T, lim *limits.Limits, bkt objstore.Bucket, args ...string) *harness {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	id := fs.String("instance.id", "", "")
	require.NoError(t, fs.Parse(args))
	cfg.DataDir = t.TempDir()
	am, err := New(cfg, Deps{Bucket: bkt, Limits: limits.NewOverrides(*lim), Tenants: tenant.Resolver{MultitenancyEnabled: true}, InstanceID: *id})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- am.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	eventually(t, "the first sync", func() bool { return am.CheckReady(ctx) == nil })
	return &harness{t: t, am: am, bkt: bkt, cfg: am.ConfigHandler(), api: am.APIHandler()}
}

func (h *harness) do(handler http.Handler, method, path, id, body string) (int, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if id != "" {
		req.Header.Set(tenant.Header, id)
	}
	if strings.HasPrefix(path, "/alertmanager/") {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func (h *harness) upload(id, body string) (int, string) {
	return h.do(h.cfg, http.MethodPost, "/api/v1/alerts", id, body)
}

func (h *harness) mustUpload(id, body string) {
	code, msg := h.upload(id, body)
	require.Equal(h.t, http.StatusCreated, code, msg)
}

func (h *harness) postAlerts(id string, names ...string) {
	var alerts []map[string]any
	for _, n := range names {
		alerts = append(alerts, map[string]any{"labels": map[string]string{"alertname": n, "severity": "page"}})
	}
	b, _ := json.Marshal(alerts)
	code, msg := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/alerts", id, string(b))
	require.Equal(h.t, http.StatusOK, code, msg)
}

// webhookConfig routes everything to url, in one group, at once.
func webhookConfig(url string) string {
	return fmt.Sprintf(`alertmanager_config: |
  route:
    receiver: hook
    group_by: ['severity']
    group_wait: 10ms
    group_interval: 10ms
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: %s
          send_resolved: false
`, url)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTenantsGetOnlyTheirOwnNotifications(t *testing.T) {
	h := newHarness(t, defaultLimits(t, "-alertmanager.receivers-firewall-allow-private"))
	recA, recB := newReceiver(t), newReceiver(t)
	h.mustUpload("tenant-a", webhookConfig(recA.srv.URL))
	h.mustUpload("tenant-b", webhookConfig(recB.srv.URL))

	// A silences SilencedAlert; B does not.
	sil := `{"matchers":[{"name":"alertname","value":"SilencedAlert","isRegex":false,"isEqual":true}],
		"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"test","comment":"mute"}`
	code, msg := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/silences", "tenant-a", sil)
	require.Equal(t, http.StatusOK, code, msg)
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	require.NoError(t, json.Unmarshal([]byte(msg), &created))
	code, _ = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/silence/"+created.SilenceID, "tenant-a", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/silence/"+created.SilenceID, "tenant-b", "")
	require.Equal(t, http.StatusNotFound, code, "B sees A's silence by id")
	code, _ = h.do(h.api, http.MethodDelete, "/alertmanager/api/v2/silence/"+created.SilenceID, "tenant-b", "")
	require.NotEqual(t, http.StatusOK, code, "B expired A's silence")

	h.postAlerts("tenant-a", "AlertOfA", "SilencedAlert")
	h.postAlerts("tenant-b", "AlertOfB", "SilencedAlert")

	eventually(t, "A's notification", func() bool { return recA.alertnames()["AlertOfA"] })
	eventually(t, "B's notification", func() bool { return recB.alertnames()["AlertOfB"] && recB.alertnames()["SilencedAlert"] })
	// One group per tenant: A's notification was sent without the alert
	// its silence mutes; B's silence list is empty, so B's has it.
	require.Equal(t, map[string]bool{"AlertOfA": true}, recA.alertnames())
	require.Equal(t, map[string]bool{"AlertOfB": true, "SilencedAlert": true}, recB.alertnames())

	// The API shows each tenant its own alerts and silences only.
	_, body := h.do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts", "tenant-b", "")
	require.Contains(t, body, "AlertOfB")
	require.NotContains(t, body, "AlertOfA")
	_, body = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/silences", "tenant-b", "")
	require.JSONEq(t, "[]", body)
	_, body = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/silences", "tenant-a", "")
	require.Contains(t, body, "SilencedAlert")
	_, body = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts?silenced=false", "tenant-a", "")
	require.NotContains(t, body, "SilencedAlert")
	for _, path := range []string{"/alertmanager/api/v2/status", "/alertmanager/api/v2/receivers", "/alertmanager/api/v2/alerts/groups"} {
		code, body := h.do(h.api, http.MethodGet, path, "tenant-a", "")
		require.Equal(t, http.StatusOK, code, path+": "+body)
	}
}

func TestConfigAPIRefusesAndKeepsTheOldConfig(t *testing.T) {
	h := newHarness(t, defaultLimits(t, "-alertmanager.max-templates-count=1", "-alertmanager.max-template-size-bytes=100", "-alertmanager.max-config-size-bytes=2000"))
	good := webhookConfig("https://hooks.example.com/a")
	h.mustUpload("t1", good)
	_, stored := h.do(h.cfg, http.MethodGet, "/api/v1/alerts", "t1", "")

	withTemplates := func(files string) string { return good + "template_files:\n" + files }
	for _, tc := range []struct{ name, body, wantErr string }{
		{"not yaml", "{{{", "decode configuration"},
		{"unknown field", good + "alertmanager_confg: x\n", "field alertmanager_confg not found"},
		{"empty", "", "empty body"},
		{"bad upstream config", "alertmanager_config: |\n  route:\n    receiver: nope\n", `undefined receiver "nope"`},
		{"password_file", strings.Replace(good, "send_resolved: false", "http_config:\n            basic_auth:\n              username: u\n              password_file: /etc/shadow", 1),
			"receivers[0].webhook_configs[0].http_config.basic_auth.password_file: fields naming local files are not allowed"},
		{"url_file", "alertmanager_config: |\n  route:\n    receiver: hook\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url_file: /etc/passwd\n", "url_file: fields naming local files"},
		{"template path", good + "  templates: ['/etc/*']\n", `templates[0]: "/etc/*" is a path`},
		{"template relative path", good + "  templates: ['../*.tmpl']\n", "is a path"},
		{"loopback receiver", webhookConfig("http://127.0.0.1:9093/x"), "127.0.0.1 is a loopback address"},
		{"link-local receiver", webhookConfig("http://169.254.169.254/latest"), "link-local address"},
		{"private receiver", webhookConfig("http://10.1.2.3/x"), "10.1.2.3 is a private address"},
		{"localhost receiver", webhookConfig("http://localhost:1234/x"), "loopback address"},
		{"sns with the process' credentials", "alertmanager_config: |\n  route:\n    receiver: sns\n  receivers:\n    - name: sns\n      sns_configs:\n        - topic_arn: arn:aws:sns:us-east-1:123456789012:t\n          sigv4:\n            region: us-east-1\n", "receivers[0].sns_configs[0].sigv4: needs its own access_key and secret_key"},
		{"loopback smarthost", "alertmanager_config: |\n  route:\n    receiver: mail\n  receivers:\n    - name: mail\n      email_configs:\n        - to: a@example.com\n          from: b@example.com\n          smarthost: 127.0.0.1:25\n", "smarthost: 127.0.0.1 is a loopback address"},
		// Aliases hid a value from the field checks while config.Load
		// resolved it: a password_file or a smarthost taken from elsewhere.
		{"password_file by alias", "alertmanager_config: |\n  route: {receiver: &f /etc/shadow}\n  receivers: [{name: *f, webhook_configs: [{url: 'https://hooks.example.com/', http_config: {basic_auth: {username: u, password_file: *f}}}]}]\n", "YAML aliases (*name) are not allowed"},
		{"smarthost by alias", "alertmanager_config: |\n  global: {smtp_hello: &h '127.0.0.1:25'}\n  route: {receiver: mail}\n  receivers: [{name: mail, email_configs: [{to: a@example.com, from: b@example.com, smarthost: *h}]}]\n", "YAML aliases (*name) are not allowed"},
		{"unresolvable smarthost", "alertmanager_config: |\n  route:\n    receiver: mail\n  receivers:\n    - name: mail\n      email_configs:\n        - to: a@example.com\n          from: b@example.com\n          smarthost: mail.invalid:25\n", `smarthost: "mail.invalid" does not resolve`},
		{"bad template", withTemplates("  a.tmpl: '{{ define \"x\" }}'\n"), `template file "a.tmpl"`},
		{"template path", withTemplates("  ../a.tmpl: 'x'\n"), "must not contain a path separator"},
		{"too many templates", withTemplates("  a.tmpl: 'x'\n  b.tmpl: 'y'\n"), "2 template files, limit 1 (-alertmanager.max-templates-count, override alertmanager_max_templates_count)"},
		{"template too big", withTemplates("  a.tmpl: '" + strings.Repeat("x", 101) + "'\n"), "is 101 bytes, limit 100 (-alertmanager.max-template-size-bytes, override alertmanager_max_template_size_bytes)"},
		{"config too big", good + "# " + strings.Repeat("x", 2000) + "\n", "limit 2000 (-alertmanager.max-config-size-bytes, override alertmanager_max_config_size_bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := h.upload("t1", tc.body)
			require.Equal(t, http.StatusBadRequest, code, msg)
			require.Contains(t, msg, tc.wantErr)
			_, now := h.do(h.cfg, http.MethodGet, "/api/v1/alerts", "t1", "")
			require.Equal(t, stored, now, "the stored configuration changed")
		})
	}
	// A template within the limits is kept and used.
	h.mustUpload("t1", strings.Replace(withTemplates("  a.tmpl: '{{ define \"x\" }}y{{ end }}'\n"), "  receivers:", "  templates: ['*.tmpl']\n  receivers:", 1))
	_, now := h.do(h.cfg, http.MethodGet, "/api/v1/alerts", "t1", "")
	require.Contains(t, now, "a.tmpl")
}

func TestHostileTenantIDs(t *testing.T) {
	h := newHarness(t, defaultLimits(t))
	for _, id := range []string{"..", "../etc", "a/b", "a\\b", "%2e%2e", strings.Repeat("x", 200)} {
		code, msg := h.upload(id, webhookConfig("https://hooks.example.com/a"))
		require.Equal(t, http.StatusBadRequest, code, id+": "+msg)
		code, _ = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts", id, "")
		require.Equal(t, http.StatusBadRequest, code, id)
	}
	code, _ := h.upload("", webhookConfig("https://hooks.example.com/a"))
	require.Equal(t, http.StatusUnauthorized, code)
	// Nothing was stored.
	require.NoError(t, h.bkt.Iter(context.Background(), "", func(name string) error {
		t.Errorf("stored %q", name)
		return nil
	}, objstore.WithRecursiveIter()))
}

func TestDeleteStopsTheTenantsAlertmanager(t *testing.T) {
	h := newHarness(t, defaultLimits(t))
	h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	h.postAlerts("t1", "A")
	code, _ := h.do(h.cfg, http.MethodDelete, "/api/v1/alerts", "t1", "")
	require.Equal(t, http.StatusOK, code)
	code, _ = h.do(h.cfg, http.MethodGet, "/api/v1/alerts", "t1", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts", "t1", "")
	require.Equal(t, http.StatusNotFound, code)
}

func TestPollPicksUpAnotherReplicasUpload(t *testing.T) {
	h := newHarness(t, defaultLimits(t))
	var uc bytes.Buffer
	uc.WriteString(webhookConfig("https://hooks.example.com/a"))
	// Stored by another replica: this one sees it at its next sync.
	require.NoError(t, h.bkt.Upload(context.Background(), bucketPrefix+"t2", &uc))
	require.NoError(t, h.am.sync(context.Background()))
	code, body := h.do(h.api, http.MethodGet, "/alertmanager/api/v2/status", "t2", "")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, h.bkt.Delete(context.Background(), bucketPrefix+"t2"))
	require.NoError(t, h.am.sync(context.Background()))
	code, _ = h.do(h.api, http.MethodGet, "/alertmanager/api/v2/status", "t2", "")
	require.Equal(t, http.StatusNotFound, code)
}

func TestMaxAlertsCount(t *testing.T) {
	h := newHarness(t, defaultLimits(t, "-alertmanager.max-alerts-count=2"))
	h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	h.postAlerts("t1", "A", "B")
	h.postAlerts("t1", "A") // an update of an alert held
	b, _ := json.Marshal([]map[string]any{{"labels": map[string]string{"alertname": "C"}}})
	code, msg := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/alerts", "t1", string(b))
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Contains(t, msg, "alertmanager_max_alerts_count")
}

// TestFallbackConfig: with a fallback configuration, a tenant's first
// alert starts its Alertmanager; an upload replaces the fallback, and a
// bad fallback file stops the process at start.
func TestFallbackConfig(t *testing.T) {
	dir := t.TempDir()
	rec := newReceiver(t)
	file := dir + "/fallback.yml"
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf("route:\n  receiver: hook\n  group_wait: 10ms\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: %s\n", rec.srv.URL)), 0o600))

	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-alertmanager.fallback-config-file=" + file, "-alertmanager.data-dir=" + dir}))
	am, err := New(cfg, Deps{Bucket: objstore.NewInMemBucket(), Limits: limits.NewOverrides(*defaultLimits(t)), Tenants: tenant.Resolver{MultitenancyEnabled: true}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- am.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	eventually(t, "the first sync", func() bool { return am.CheckReady(ctx) == nil })
	h := &harness{t: t, am: am, cfg: am.ConfigHandler(), api: am.APIHandler()}
	h.postAlerts("newcomer", "First")
	eventually(t, "the fallback's notification", func() bool { return rec.alertnames()["First"] })
	code, _ := h.do(h.cfg, http.MethodGet, "/api/v1/alerts", "newcomer", "")
	require.Equal(t, http.StatusNotFound, code, "the fallback is not the tenant's stored configuration")

	require.NoError(t, os.WriteFile(file, []byte("route:\n  receiver: nope\n"), 0o600))
	_, err = New(cfg, Deps{Bucket: objstore.NewInMemBucket(), Limits: limits.NewOverrides(*defaultLimits(t))})
	require.ErrorContains(t, err, `-alertmanager.fallback-config-file fallback.yml: alertmanager_config: undefined receiver "nope"`)
}

// TestConfigsAreNoTenantsBlocks: the components that list tenants in the
// bucket (compactor, bucket index, store-gateway) never see the
// Alertmanager's objects as a tenant, whatever the tenant ids.
func TestConfigsAreNoTenantsBlocks(t *testing.T) {
	h := newReplica(t, defaultLimits(t), objstore.NewInMemBucket(), "am-1")
	for _, id := range []string{"alertmanager", "configs", "replicas", "t1"} {
		h.mustUpload(id, webhookConfig("https://hooks.example.com/a"))
	}
	ids, err := bucket.Tenants(context.Background(), h.bkt)
	require.NoError(t, err)
	require.Empty(t, ids)
	require.NoError(t, h.am.sync(context.Background()))
	require.ElementsMatch(t, []string{"alertmanager", "configs", "replicas", "t1"}, h.am.tenantIDs())
}

func TestMaxAggregationGroups(t *testing.T) {
	h := newHarness(t, defaultLimits(t, "-alertmanager.max-dispatcher-aggregation-groups=1"))
	cfg := strings.Replace(webhookConfig("https://hooks.example.com/a"), "group_by: ['severity']", "group_by: ['alertname']", 1)
	h.mustUpload("t1", cfg)
	h.postAlerts("t1", "A", "B")
	refused := func() bool {
		mfs, err := h.am.registry("t1").Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "alertmanager_dispatcher_aggregation_group_limit_reached_total" {
				return mf.GetMetric()[0].GetCounter().GetValue() > 0
			}
		}
		return false
	}
	eventually(t, "the group limit to refuse a group", refused)
	eventually(t, "the group admitted", func() bool {
		_, body := h.do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts/groups", "t1", "")
		var groups []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &groups))
		require.LessOrEqual(t, len(groups), 1, body)
		return len(groups) == 1
	})
}

// TestSilenceLimits: a tenant's silences are bounded in number and size
// (alertmanager_max_silences_count, alertmanager_max_silence_size_bytes);
// over either, a new silence gets 400 and the kept ones stay.
func TestSilenceLimits(t *testing.T) {
	h := newHarness(t, defaultLimits(t, "-alertmanager.max-silences-count=2", "-alertmanager.max-silence-size-bytes=400"))
	h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	silence := func(comment string) string {
		return `{"matchers":[{"name":"alertname","value":"A","isRegex":false,"isEqual":true}],
			"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"test","comment":"` + comment + `"}`
	}
	for i := range 2 {
		code, msg := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", silence(fmt.Sprint("mute ", i)))
		require.Equal(t, http.StatusOK, code, msg)
	}
	code, msg := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", silence("one too many"))
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Contains(t, msg, "exceeded maximum number of silences")

	h2 := newHarness(t, defaultLimits(t, "-alertmanager.max-silence-size-bytes=400"))
	h2.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	code, msg = h2.do(h2.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", silence(strings.Repeat("x", 1000)))
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Contains(t, msg, "silence exceeded maximum size")
	_, body := h.do(h.api, http.MethodGet, "/alertmanager/api/v2/silences", "t1", "")
	require.Contains(t, body, "mute 0")
	require.Contains(t, body, "mute 1")
}
