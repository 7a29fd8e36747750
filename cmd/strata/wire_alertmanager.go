package main

import (
	"fmt"

	"github.com/strata-metrics/strata/alertmanager"
)

// newAlertmanager runs one upstream Alertmanager per tenant, configured
// through the bucket.
//
// Routes (Mimir's layout): /api/v1/alerts is the tenants' configuration
// API, /alertmanager/ their Alertmanager API (api/v2/...). Prometheus'
// GET /api/v1/alerts (the ruler's alert list) lives at
// /prometheus/api/v1/alerts when this module runs.
func newAlertmanager(w *wiring) (*module, error) {
	bkt, err := w.openBucket("alertmanager")
	if err != nil {
		return nil, err
	}
	am, err := alertmanager.New(w.cfg.Alertmanager, alertmanager.Deps{
		Bucket: bkt, Limits: w.overrides, Tenants: w.tenants, TenantLabels: w.tenantLabels,
		InstanceID: w.cfg.Instance.ID,
		Log:        w.log.With("component", "alertmanager"), Reg: w.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("create alertmanager: %w", err)
	}
	w.srv.Handle("/api/v1/alerts", "api_v1_alerts", am.ConfigHandler())
	w.srv.Handle("/alertmanager/", "alertmanager", am.APIHandler())
	return &module{run: am.Run, ready: []readyCheck{{"alertmanager", am.CheckReady}}}, nil
}
