package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// compareConfig groups by alertname and cluster, inhibits warnings of a
// cluster with a critical alert, and repeats a group every 4s; %s is the
// webhook URL.
const compareConfig = `route:
  receiver: hook
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4s
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`

// hookLog records the webhook notifications of one Alertmanager, each as
// its signature: group labels, status and its alerts with theirs.
type hookLog struct {
	mu  sync.Mutex
	got []string
}

func (h *hookLog) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Status      string
			GroupLabels map[string]string
			Alerts      []struct {
				Status string
				Labels map[string]string
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var alerts []string
		for _, a := range msg.Alerts {
			alerts = append(alerts, fmt.Sprintf("%s/%s/%s:%s", a.Labels["alertname"], a.Labels["cluster"], a.Labels["instance"], a.Status))
		}
		sort.Strings(alerts)
		sig := fmt.Sprintf("group %s/%s %s [%s]", msg.GroupLabels["alertname"], msg.GroupLabels["cluster"], msg.Status, strings.Join(alerts, " "))
		h.mu.Lock()
		h.got = append(h.got, sig)
		h.mu.Unlock()
	})
}

// counts are how many times each signature was notified.
func (h *hookLog) counts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, s := range h.got {
		out[s]++
	}
	return out
}

// TestAlertmanagerMatchesUpstream feeds the same alerts to Debian's
// prometheus-alertmanager and to a tenant of Strata's built-in
// Alertmanager, both with one configuration (grouping, an inhibition rule,
// a repeat interval and resolved notifications), and compares what their
// webhooks get: the same groups, with the same alerts in each, firing and
// resolved alike, the inhibited alert in none, and the repeated group
// repeated by both.
//
// No window is shared: each step waits (within a generous deadline)
// until both webhooks got what it waits for, so a loaded machine that
// delays one Alertmanager's timers only slows the test.
func TestAlertmanagerMatchesUpstream(t *testing.T) {
	amBin := procs.LookPathT(t, "prometheus-alertmanager", "prometheus-alertmanager")
	bin := strataBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var upstream, strata hookLog
	mux := http.NewServeMux()
	mux.Handle("/upstream", upstream.handler())
	mux.Handle("/strata", strata.handler())
	hook := httptest.NewServer(mux)
	defer hook.Close()

	dir := t.TempDir()
	amCfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(amCfg, []byte(fmt.Sprintf(compareConfig, hook.URL+"/upstream")), 0o644))
	amAddr, err := procs.FreeAddr()
	require.NoError(t, err)
	am := procs.StartT(t, procs.Spec{Name: "alertmanager", Path: amBin, Dir: dir, Args: []string{
		"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
		"--web.listen-address=" + amAddr, "--cluster.listen-address=",
	}})
	procs.WaitHTTPT(t, am, "http://"+amAddr+"/-/ready", time.Minute)

	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-auth.multitenancy-enabled",
		"-alertmanager.receivers-firewall-allow-private", // the webhook is on loopback
	}})
	post := func(url, orgID, contentType, body string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		if orgID != "" {
			req.Header.Set("X-Scope-OrgID", orgID)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300, "POST %s: %s", url, b)
	}
	upload, err := json.Marshal(fmt.Sprintf(compareConfig, hook.URL+"/strata"))
	require.NoError(t, err)
	post(s.URL+"/api/v1/alerts", "cmp", "application/yaml", "alertmanager_config: "+string(upload)+"\n")

	// Both get every post, upstream first.
	postBoth := func(alerts string) {
		post("http://"+amAddr+"/api/v2/alerts", "", "application/json", alerts)
		post(s.URL+"/alertmanager/api/v2/alerts", "cmp", "application/json", alerts)
	}
	alert := func(name, cluster, instance, severity string, endsAt time.Time) map[string]any {
		a := map[string]any{"labels": map[string]string{"alertname": name, "cluster": cluster, "instance": instance, "severity": severity}}
		if !endsAt.IsZero() {
			a["endsAt"] = endsAt.UTC().Format(time.RFC3339Nano)
		}
		return a
	}
	batch := func(alerts ...map[string]any) string {
		b, err := json.Marshal(alerts)
		require.NoError(t, err)
		return string(b)
	}
	postBoth(batch(
		alert("Down", "eu", "1", "critical", time.Time{}),
		alert("Down", "eu", "2", "critical", time.Time{}), // the same group
		alert("Slow", "eu", "1", "warning", time.Time{}),  // inhibited: eu has a critical alert
		alert("Slow", "us", "1", "warning", time.Time{}),  // a group of its own, resolved below
	))
	down := "group Down/eu firing [Down/eu/1:firing Down/eu/2:firing]"
	slowFiring := "group Slow/us firing [Slow/us/1:firing]"
	slowResolved := "group Slow/us resolved [Slow/us/1:resolved]"
	hooks := map[string]*hookLog{"upstream": &upstream, "strata": &strata}
	// await polls until every Alertmanager's webhook got sig at least n
	// times; the deadline is generous (a loaded machine), not a measure.
	await := func(sig string, n int) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		require.NoError(t, procs.Poll(wctx, 100*time.Millisecond, func() (bool, string) {
			for name, h := range hooks {
				if c := h.counts(); c[sig] < n {
					return false, fmt.Sprintf("%s notified %q %d of %d times: %v", name, sig, c[sig], n, c)
				}
			}
			return true, ""
		}))
	}
	// Slow/us resolves once both have notified it firing.
	await(slowFiring, 1)
	postBoth(batch(alert("Slow", "us", "1", "warning", time.Now())))
	await(slowResolved, 1)
	// Down/eu stays firing: each Alertmanager repeats it, every
	// repeat_interval from its own first notification.
	await(down, 3)

	want := []string{down, slowFiring, slowResolved}
	for name, h := range hooks {
		h.mu.Lock()
		got := slices.Clone(h.got)
		h.mu.Unlock()
		counts := h.counts()
		require.ElementsMatch(t, want, slices.Collect(maps.Keys(counts)), "%s's notifications (the inhibited Slow/eu in none): %v", name, got)
		require.Equal(t, 1, counts[slowResolved], "%s: Slow/us resolved notified once: %v", name, got)
		// Slow/us firing (once, or repeated if resolving it took longer
		// than repeat_interval) only before it resolved.
		resolvedAt := slices.Index(got, slowResolved)
		require.NotContains(t, got[resolvedAt:], slowFiring, "%s: Slow/us firing after it resolved: %v", name, got)
	}
}
