package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestAlertmanagerNotifiesAWebhook: a real strata process takes two
// tenants' Alertmanager configurations with different routes and
// receivers, alerts posted to their v2 API, and sends each tenant's to its
// own webhooks only; a silence of A mutes A's alert and not B's alert of
// the same name; the self-metrics count the notifications; the web UI and
// buildinfo's alertmanager_config_api are served.
func TestAlertmanagerNotifiesAWebhook(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{} // path -> alertnames
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if json.NewDecoder(r.Body).Decode(&msg) == nil {
			mu.Lock()
			for _, a := range msg.Alerts {
				got[r.URL.Path] = append(got[r.URL.Path], a.Labels["alertname"])
			}
			mu.Unlock()
		}
	}))
	defer hook.Close()

	s := procs.StartStrataT(t, procs.StrataConfig{Bin: strataBin(t), Args: []string{
		"-auth.multitenancy-enabled",
		"-alertmanager.receivers-firewall-allow-private", // the webhook is on loopback
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	call := func(method, path, orgID, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if orgID != "" {
			req.Header.Set("X-Scope-OrgID", orgID)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// team-a: one route, every alert in one group. team-b: pages go to a
	// receiver of their own.
	configs := map[string]string{
		"team-a": fmt.Sprintf("alertmanager_config: |\n  route:\n    receiver: hook\n    group_wait: 10ms\n    group_interval: 10ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: %s/team-a\n", hook.URL),
		"team-b": fmt.Sprintf("alertmanager_config: |\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 10ms\n    group_interval: 10ms\n    routes:\n      - matchers: [severity=\"page\"]\n        receiver: pager\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: %[1]s/team-b\n    - name: pager\n      webhook_configs:\n        - url: %[1]s/team-b-pager\n", hook.URL),
	}
	for _, tenant := range []string{"team-a", "team-b"} {
		if code, body := call(http.MethodPost, "/api/v1/alerts", tenant, "application/yaml", configs[tenant]); code != http.StatusCreated {
			t.Fatalf("upload config of %s: %d %s", tenant, code, body)
		}
	}
	if code, body := call(http.MethodGet, "/api/v1/alerts", "team-a", "", ""); code != http.StatusOK || !strings.Contains(body, "/team-a") {
		t.Fatalf("get config: %d %s", code, body)
	}
	// team-a silences Muted.
	if code, body := call(http.MethodPost, "/alertmanager/api/v2/silences", "team-a", "application/json", `{"matchers":[{"name":"alertname","value":"Muted","isRegex":false,"isEqual":true}],
		"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"e2e","comment":"mute"}`); code != http.StatusOK {
		t.Fatalf("team-a's silence: %d %s", code, body)
	}
	for _, tenant := range []string{"team-a", "team-b"} {
		alerts := map[string]string{
			"team-a": `[{"labels":{"alertname":"DiskFull"}},{"labels":{"alertname":"Muted"}}]`,
			"team-b": `[{"labels":{"alertname":"DiskFull","severity":"page"}},{"labels":{"alertname":"Muted"}}]`,
		}[tenant]
		if code, body := call(http.MethodPost, "/alertmanager/api/v2/alerts", tenant, "application/json", alerts); code != http.StatusOK {
			t.Fatalf("post alerts of %s: %d %s", tenant, code, body)
		}
	}
	err := procs.Poll(ctx, 50*time.Millisecond, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got["/team-a"]) > 0 && len(got["/team-b"]) > 0 && len(got["/team-b-pager"]) > 0, fmt.Sprintf("webhook got %v", got)
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	// team-a's one group was notified without the alert its silence mutes.
	if want := map[string][]string{"/team-a": {"DiskFull"}, "/team-b": {"Muted"}, "/team-b-pager": {"DiskFull"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("notifications: %v; want %v", got, want)
	}
	mu.Unlock()
	if code, body := call(http.MethodGet, "/alertmanager/api/v2/alerts", "team-b", "", ""); code != http.StatusOK || !strings.Contains(body, "severity") {
		t.Errorf("team-b's alerts: %d %s", code, body)
	}
	if code, body := call(http.MethodGet, "/alertmanager/api/v2/silences", "team-b", "", ""); code != http.StatusOK || strings.Contains(body, "Muted") {
		t.Errorf("team-b's silences: %d %s", code, body)
	}
	if code, body := call(http.MethodGet, "/alertmanager/", "team-a", "", ""); code != http.StatusOK || !strings.Contains(body, "<title>Alertmanager</title>") {
		t.Errorf("web UI: %d %.200s", code, body)
	}
	if code, body := call(http.MethodGet, "/api/v1/status/buildinfo", "", "", ""); code != http.StatusOK || !strings.Contains(body, `"alertmanager_config_api":"true"`) {
		t.Errorf("buildinfo: %d %s", code, body)
	}
	_, metrics := call(http.MethodGet, "/metrics", "team-a", "", "")
	if !strings.Contains(metrics, `strata_alertmanager_notifications_total{integration="webhook",`) || !strings.Contains(metrics, `strata_alertmanager_alerts_received_total{tenant="team-a"} 2`) {
		t.Errorf("self-metrics lack the notification:\n%s", grepLines(metrics, "strata_alertmanager_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
