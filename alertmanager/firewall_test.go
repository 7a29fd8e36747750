package alertmanager

import (
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// TestFirewallOverrideIsReadAtDialTime: a tenant allowed private addresses
// by its override uploads a loopback receiver; once the override is gone,
// the notification fails at dial time (the upload was checked under the
// old rule) and is counted as failed for that tenant.
func TestFirewallOverrideIsReadAtDialTime(t *testing.T) {
	dir := t.TempDir()
	overridesFile := filepath.Join(dir, "overrides.yml")
	write := func(s string) { require.NoError(t, os.WriteFile(overridesFile, []byte(s), 0o600)) }
	write("overrides:\n  trusted:\n    alertmanager_receivers_firewall_allow_private: true\n")
	ov, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: overridesFile, ReloadPeriod: 1}, *defaultLimits(t), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, ov.Load())

	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-alertmanager.data-dir=" + dir}))
	reg := prometheus.NewRegistry()
	am, err := New(cfg, Deps{Bucket: objstore.NewInMemBucket(), Limits: ov, Tenants: tenant.Resolver{MultitenancyEnabled: true}, Reg: reg})
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

	rec := newReceiver(t)
	code, msg := h.upload("untrusted", webhookConfig(rec.srv.URL))
	require.Equal(t, http.StatusBadRequest, code, msg)
	require.Contains(t, msg, "loopback address")
	h.mustUpload("trusted", webhookConfig(rec.srv.URL))

	write("overrides:\n")
	require.NoError(t, ov.Load())
	h.postAlerts("trusted", "Blocked")
	failed := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() != "strata_alertmanager_notifications_failed_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, lp := range m.GetLabel() {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["tenant"] == "trusted" && labels["integration"] == "webhook" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
		return sum
	}
	eventually(t, "a failed notification", func() bool { return failed() > 0 })
	require.Empty(t, rec.messages(), "the firewall let a notification through")
	out, err := testutil.GatherAndCount(reg, "strata_alertmanager_alerts_received_total")
	require.NoError(t, err)
	require.Equal(t, 1, out)
}
