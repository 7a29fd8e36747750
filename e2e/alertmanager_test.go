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

// TestAlertmanagerNotifiesAWebhook: a real strata process takes a tenant's
// Alertmanager configuration, an alert posted to the tenant's v2 API, and
// sends it to the tenant's webhook; the other tenant's receiver gets
// nothing of it, and the self-metrics count the notification.
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
		req.Header.Set("X-Scope-OrgID", orgID)
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
	config := func(path string) string {
		return fmt.Sprintf("alertmanager_config: |\n  route:\n    receiver: hook\n    group_wait: 10ms\n    group_interval: 10ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: %s%s\n", hook.URL, path)
	}
	for _, tenant := range []string{"team-a", "team-b"} {
		if code, body := call(http.MethodPost, "/api/v1/alerts", tenant, "application/yaml", config("/"+tenant)); code != http.StatusCreated {
			t.Fatalf("upload config of %s: %d %s", tenant, code, body)
		}
	}
	if code, body := call(http.MethodGet, "/api/v1/alerts", "team-a", "", ""); code != http.StatusOK || !strings.Contains(body, "/team-a") {
		t.Fatalf("get config: %d %s", code, body)
	}
	if code, body := call(http.MethodPost, "/alertmanager/api/v2/alerts", "team-a", "application/json", `[{"labels":{"alertname":"DiskFull"}}]`); code != http.StatusOK {
		t.Fatalf("post alert: %d %s", code, body)
	}
	err := procs.Poll(ctx, 50*time.Millisecond, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got["/team-a"]) > 0, fmt.Sprintf("webhook got %v", got)
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got["/team-b"]) != 0 || got["/team-a"][0] != "DiskFull" {
		t.Errorf("notifications: %v; want DiskFull at /team-a only", got)
	}
	mu.Unlock()
	if code, body := call(http.MethodGet, "/alertmanager/api/v2/alerts", "team-b", "", ""); code != http.StatusOK || strings.Contains(body, "DiskFull") {
		t.Errorf("team-b's alerts: %d %s", code, body)
	}
	_, metrics := call(http.MethodGet, "/metrics", "team-a", "", "")
	if !strings.Contains(metrics, `strata_alertmanager_notifications_total{integration="webhook",`) || !strings.Contains(metrics, `strata_alertmanager_alerts_received_total{tenant="team-a"} 1`) {
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
