package ruler

import (
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/tenant"
)

// TestNotifierSendsTenant: alerts go to the Alertmanager's v2 API, under
// its path prefix, with the tenant's X-Scope-OrgID and external labels.
func TestNotifierSendsTenant(t *testing.T) {
	var mu sync.Mutex
	var paths, orgs, bodies []string
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths, orgs, bodies = append(paths, r.URL.Path), append(orgs, r.Header.Get(tenant.Header)), append(bodies, string(b))
		mu.Unlock()
	}))
	defer am.Close()
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	n, err := newTenantNotifier("team-a", am.URL+"/am", cfg, notifierDeps{external: labels.FromStrings("cluster", "eu"), reg: prometheus.NewRegistry(), log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	n.start()
	defer n.stop(time.Minute)
	eventually(t, "the Alertmanager to be known", func() bool { return len(n.mgr.Alertmanagers()) == 1 })
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "A"), StartsAt: time.Now()})
	eventually(t, "a send", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(paths) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, "/am/api/v2/alerts", paths[0])
	require.Equal(t, "team-a", orgs[0])
	require.True(t, strings.Contains(bodies[0], `"cluster":"eu"`), bodies[0])
}
