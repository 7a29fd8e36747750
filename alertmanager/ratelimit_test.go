package alertmanager

import (
	"context"
	"flag"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// swappableLimits are every tenant's limits, replaced as a runtime
// overrides reload would.
type swappableLimits struct{ l atomic.Pointer[limits.Limits] }

func (s *swappableLimits) For(string) *limits.Limits { return s.l.Load() }

// TestNotificationRateLimit: a tenant whose webhook may send one
// notification (burst 1, then one per 1000 s) gets its first group
// notified; the second group's notification fails, counted, until the
// override lifts the limit, and the group's next flush then delivers it.
func TestNotificationRateLimit(t *testing.T) {
	lim := &swappableLimits{}
	lim.l.Store(defaultLimits(t, "-alertmanager.receivers-firewall-allow-private",
		"-alertmanager.notification-rate-limit=1000", // the map below wins for webhooks
		`-alertmanager.notification-rate-limit-per-integration={"webhook": 0.001}`))
	h := startWith(t, lim, tenant.Resolver{MultitenancyEnabled: true})
	am := h.am

	rec := newReceiver(t)
	// One group per alertname: each alert is a notification of its own.
	h.mustUpload("t1", `alertmanager_config: |
  route:
    receiver: hook
    group_by: ['alertname']
    group_wait: 10ms
    group_interval: 10ms
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: `+rec.srv.URL+`
          send_resolved: false
`)
	limited := func() float64 {
		return testutil.ToFloat64(am.metrics.rateLimitedVec.WithLabelValues("t1", "webhook"))
	}
	h.postAlerts("t1", "First")
	eventually(t, "the first notification", func() bool { return rec.alertnames()["First"] })
	require.Zero(t, limited())

	h.postAlerts("t1", "Second")
	eventually(t, "a refused notification", func() bool { return limited() > 0 })
	require.Equal(t, map[string]bool{"First": true}, rec.alertnames(), "the refused notification reached the webhook")

	// The refusal names the limit, the flag and the override.
	am.mu.Lock()
	in := am.instances["t1"]
	am.mu.Unlock()
	err := in.rates.allow("webhook")
	require.ErrorIs(t, err, ErrNotificationRateLimited)
	require.EqualError(t, err, "notification rate limit reached: integration webhook may send 0.001 notifications/s (-alertmanager.notification-rate-limit-per-integration, override alertmanager_notification_rate_limit_per_integration)")

	// The operator lifts the tenant's webhook limit: the group's next
	// flush sends the notification that failed.
	lifted := *lim.l.Load()
	lifted.AlertmanagerNotificationRateLimitPerIntegration = limits.NewRateMap(map[string]float64{"webhook": 0})
	lim.l.Store(&lifted)
	eventually(t, "the refused notification, once the limit is lifted", func() bool { return rec.alertnames()["Second"] })
}

func TestNotificationRateOf(t *testing.T) {
	l := defaultLimits(t, "-alertmanager.notification-rate-limit=2", `-alertmanager.notification-rate-limit-per-integration={"email": 0}`)
	require.Equal(t, notificationRate{rate: 2, flag: "alertmanager.notification-rate-limit", override: "alertmanager_notification_rate_limit"}, notificationRateOf(l, "webhook"))
	require.Equal(t, notificationRate{rate: 0, flag: "alertmanager.notification-rate-limit-per-integration", override: "alertmanager_notification_rate_limit_per_integration"}, notificationRateOf(l, "email"))
	// The default: no limit.
	require.Equal(t, 0.0, notificationRateOf(defaultLimits(t), "webhook").rate)
}

// startWith runs an Alertmanager with the limits lim and the tenants of
// tenants, and a registry for its metrics.
func startWith(t *testing.T, lim tenantLimits, tenants tenant.Resolver) *harness {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	cfg.DataDir = t.TempDir()
	am, err := New(cfg, Deps{Bucket: objstore.NewInMemBucket(), Limits: lim, Tenants: tenants, Reg: prometheus.NewRegistry()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- am.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	eventually(t, "the first sync", func() bool { return am.CheckReady(ctx) == nil })
	return &harness{t: t, am: am, cfg: am.ConfigHandler(), api: am.APIHandler()}
}
