package ruler

import (
	"context"
	"errors"
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
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
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

// fakeBuiltin is a built-in Alertmanager that records what it is posted.
type fakeBuiltin struct {
	mu        sync.Mutex
	available bool
	fail      error
	tenants   []string
	bodies    []string
}

func (f *fakeBuiltin) Available() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.available
}

func (f *fakeBuiltin) PostAlerts(_ context.Context, tenantID string, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenants, f.bodies = append(f.tenants, tenantID), append(f.bodies, string(body))
	return f.fail
}

func (f *fakeBuiltin) posts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

// TestBuiltinAlertmanager: without an Alertmanager URL, a tenant's alerts
// go to the built-in Alertmanager (never to the network), with its tenant;
// its refusal counts as a failed send; a URL (flag or override) wins.
func TestBuiltinAlertmanager(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	b := &fakeBuiltin{available: true}
	reg := prometheus.NewRegistry()
	n, err := newTenantNotifier("team-a", builtinAlertmanagerURL, cfg, notifierDeps{reg: reg, log: slog.New(slog.DiscardHandler), builtin: b})
	require.NoError(t, err)
	n.start()
	defer n.stop(time.Minute)
	eventually(t, "the Alertmanager to be known", func() bool { return len(n.mgr.Alertmanagers()) == 1 })
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "A"), StartsAt: time.Now()})
	eventually(t, "a post to the built-in Alertmanager", func() bool { return b.posts() == 1 })
	b.mu.Lock()
	require.Equal(t, "team-a", b.tenants[0])
	require.Contains(t, b.bodies[0], `"alertname":"A"`)
	b.fail = errors.New("no healthy alertmanager replica owns tenant")
	b.mu.Unlock()
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "B"), StartsAt: time.Now()})
	eventually(t, "a failed send counted", func() bool {
		return notificationErrors(t, reg) >= 1
	})

	// settings: the built-in one only where no URL is configured and one runs.
	r := &Ruler{cfg: cfg, deps: Deps{Limits: limits.NewOverrides(limits.Limits{}), Alertmanager: b}}
	require.Equal(t, builtinAlertmanagerURL, r.settings("team-a").alertmanagers)
	b.mu.Lock()
	b.available = false
	b.mu.Unlock()
	require.Empty(t, r.settings("team-a").alertmanagers, "no built-in Alertmanager runs: alerts are not sent")
	r.cfg.AlertmanagerURL = "http://am.example:9093"
	b.mu.Lock()
	b.available = true
	b.mu.Unlock()
	require.Equal(t, "http://am.example:9093", r.settings("team-a").alertmanagers)
}

// notificationErrors sums the notifier's
// prometheus_notifications_errors_total in reg.
func notificationErrors(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "prometheus_notifications_errors_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// unconfiguredErr is what alertmanager.Sender returns for a tenant without
// an Alertmanager configuration.
type unconfiguredErr struct{}

func (unconfiguredErr) Error() string       { return "tenant has no alertmanager configuration" }
func (unconfiguredErr) NotConfigured() bool { return true }

// TestBuiltinAlertmanagerUnconfigured: a tenant with alerting rules but no
// Alertmanager configuration is not an error at every evaluation: its
// alerts are dropped and counted apart.
func TestBuiltinAlertmanagerUnconfigured(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	b := &fakeBuiltin{available: true, fail: unconfiguredErr{}}
	reg := prometheus.NewRegistry()
	n, err := newTenantNotifier("team-a", builtinAlertmanagerURL, cfg, notifierDeps{reg: reg, log: slog.New(slog.DiscardHandler), builtin: b})
	require.NoError(t, err)
	n.start()
	defer n.stop(time.Minute)
	eventually(t, "the Alertmanager to be known", func() bool { return len(n.mgr.Alertmanagers()) == 1 })
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "A"), StartsAt: time.Now()})
	eventually(t, "the batch counted as unconfigured", func() bool {
		n, err := testutil.GatherAndCount(reg, unconfiguredName)
		if err != nil || n == 0 {
			return false
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == unconfiguredName {
				return mf.GetMetric()[0].GetCounter().GetValue() == 1
			}
		}
		return false
	})
	require.Zero(t, notificationErrors(t, reg), "not a failed send")
}
