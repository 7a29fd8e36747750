package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestRulerAlertmanager: a firing alert reaches a real Alertmanager
// (Debian's prometheus-alertmanager) and through it a webhook receiver,
// with the rule's labels and the tenant's external labels from the
// overrides file.
func TestRulerAlertmanager(t *testing.T) {
	amBin := procs.LookPathT(t, "prometheus-alertmanager", "prometheus-alertmanager")
	bin := strataBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var got []map[string]string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Status string
				Labels map[string]string
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err == nil {
			mu.Lock()
			for _, a := range msg.Alerts {
				if a.Status == "firing" {
					got = append(got, a.Labels)
				}
			}
			mu.Unlock()
		}
	}))
	defer hook.Close()

	dir := t.TempDir()
	amCfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(amCfg, []byte(fmt.Sprintf(`route:
  receiver: hook
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
`, hook.URL)), 0o644))
	amAddr, err := procs.FreeAddr()
	require.NoError(t, err)
	am := procs.StartT(t, procs.Spec{Name: "alertmanager", Path: amBin, Dir: dir, Args: []string{
		"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "am-data"),
		"--web.listen-address=" + amAddr, "--cluster.listen-address=",
	}})
	procs.WaitHTTPT(t, am, "http://"+amAddr+"/-/ready", time.Minute)

	overrides := filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(overrides, []byte("overrides:\n  team-a:\n    ruler_external_labels: {cluster: eu-1}\n"), 0o644))
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-auth.multitenancy-enabled", "-ruler.poll-interval=1s",
		"-ruler.alertmanager-url=http://" + amAddr, "-runtime-config.file=" + overrides,
	}})
	a := newClient(s.URL, "team-a")
	ans, err := a.do(ctx, http.MethodPost, "/config/v1/rules/ml", nil, map[string]string{"Content-Type": "application/yaml"}, []byte(`name: always
interval: 1s
rules:
- alert: AlwaysFiring
  expr: vector(1)
  labels: {severity: page}
`))
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, ans.Status, ans.text())

	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0, "no alert at the webhook yet"
	}))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]string{"alertname": "AlwaysFiring", "severity": "page", "cluster": "eu-1"}, got[0])
	sent, err := a.metric(ctx, "strata_ruler_notifications_sent_total", map[string]string{"tenant": "team-a"})
	require.NoError(t, err)
	require.Positive(t, sent)
}
