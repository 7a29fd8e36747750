package main

import (
	"fmt"

	"github.com/strata-metrics/strata/alertmanager"
	"github.com/strata-metrics/strata/proto/alertmanagerpb"
)

// newAlertmanager runs one upstream Alertmanager per tenant, configured
// through the bucket.
//
// Routes (Mimir's layout): /api/v1/alerts is the tenants' configuration
// API, /alertmanager/ their Alertmanager API (api/v2/...). Prometheus'
// GET /api/v1/alerts (the ruler's alert list) lives at
// /prometheus/api/v1/alerts when this module runs.
//
// Tenants are sharded by the alertmanager ring (/alertmanager/ring) at
// -alertmanager.sharding-ring.replication-factor; a replica is ACTIVE
// there at once and leaves it at shutdown, so that its tenants' other
// owners take over at once. One process (-target=all) is the ring's only
// instance: every tenant has that one owner.
func newAlertmanager(w *wiring) (*module, error) {
	bkt, err := w.openBucket("alertmanager")
	if err != nil {
		return nil, err
	}
	store, amRing := w.amStore, w.amRing // wire_ruler.go
	w.srv.Handle("/alertmanager/ring", "alertmanager_ring", w.operator(amRing.StatusHandlerTitled("Alertmanager ring")))
	am, err := alertmanager.New(w.cfg.Alertmanager, alertmanager.Deps{
		Bucket: bkt, Limits: w.overrides, Tenants: w.tenants, TenantLabels: w.tenantLabels,
		Ring: amRing, Peers: w.clients(), InstanceID: w.cfg.Instance.ID,
		Seedless: w.cfg.Memberlist.Join == "",
		Log:      w.log.With("component", "alertmanager"), Reg: w.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("create alertmanager: %w", err)
	}
	w.am = am // the ruler's sender posts to it in process
	w.srv.Handle("/api/v1/alerts", "api_v1_alerts", am.ConfigHandler())
	w.srv.Handle("/alertmanager/", "alertmanager", am.APIHandler())
	alertmanagerpb.RegisterAlertmanagerServer(w.srv.GRPC(), am.GRPCServer())
	lcCfg := w.cfg.Lifecycler
	lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = alertmanager.RingNumTokens, true
	return &module{
		run: am.Run, ready: []readyCheck{{"alertmanager", am.CheckReady}},
		ring: &ringMember{ring: "alertmanager", lc: w.lifecycler("alertmanager", lcCfg, store, "")},
	}, nil
}
