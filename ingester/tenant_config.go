package ingester

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
)

// Per-tenant settings from the runtime overrides whose defaults are
// ingester flags (limits.Limits' pointer fields: nil means the flag):
//
//	out_of_order_time_window  -ingester.out-of-order-time-window
//	max_exemplars             -blocks-storage.tsdb.max-exemplars
//	max_metadata_per_user     -ingester.max-metadata-per-tenant
//
// and one whose default is a limits flag: max_metadata_per_metric
// (-ingester.max-metadata-per-metric; with no limits, New's lim nil, no
// per-family limit).
//
// They are set when the tenant's TSDB opens and, when an override changes,
// applied to the open TSDB (tsdb.DB.ApplyConfig) on the tenant's next push:
// no goroutine, and a push costs one overrides lookup and two comparisons.
// One exception: a tenant whose TSDB opened with exemplar storage off (a
// max of 0) gets it only when its TSDB opens again (a restart), because
// the TSDB cannot turn exemplar storage on while open.

// tenantSettings are the effective per-tenant settings.
type tenantSettings struct {
	oooWindowMs  int64
	maxExemplars int64
	maxMetadata  int
	// maxMetadataPerMetric: entries per metric family, 0: no limit.
	maxMetadataPerMetric int
}

// tenantConfig is what was applied to one tenant's TSDB.
type tenantConfig struct {
	mu           sync.Mutex // serialises applying
	oooWindowMs  atomic.Int64
	maxExemplars atomic.Int64
	maxMetadata  atomic.Int64
	// maxMetadataPerMetric is tenantSettings.maxMetadataPerMetric.
	maxMetadataPerMetric atomic.Int64
}

func (tc *tenantConfig) is(s tenantSettings) bool {
	return tc.oooWindowMs.Load() == s.oooWindowMs && tc.maxExemplars.Load() == s.maxExemplars && tc.maxMetadata.Load() == int64(s.maxMetadata) &&
		tc.maxMetadataPerMetric.Load() == int64(s.maxMetadataPerMetric)
}

func (tc *tenantConfig) store(s tenantSettings) {
	tc.oooWindowMs.Store(s.oooWindowMs)
	tc.maxExemplars.Store(s.maxExemplars)
	tc.maxMetadata.Store(int64(s.maxMetadata))
	tc.maxMetadataPerMetric.Store(int64(s.maxMetadataPerMetric))
}

// settings are tenantID's effective settings: its overrides, or the flags.
func (i *Ingester) settings(tenantID string) tenantSettings {
	s := tenantSettings{
		oooWindowMs:  i.cfg.OutOfOrderTimeWindow.Milliseconds(),
		maxExemplars: int64(i.cfg.MaxExemplars),
		maxMetadata:  i.cfg.MaxMetadataPerTenant,
	}
	if i.limits == nil {
		return s
	}
	lim := i.limits.For(tenantID)
	s.maxMetadataPerMetric = lim.MaxMetadataPerMetric
	if lim.OutOfOrderTimeWindow != nil {
		s.oooWindowMs = lim.OutOfOrderTimeWindow.Milliseconds()
	}
	if lim.MaxExemplars != nil {
		s.maxExemplars = int64(*lim.MaxExemplars)
	}
	if lim.MaxMetadataPerUser != nil {
		s.maxMetadata = *lim.MaxMetadataPerUser
	}
	return s
}

// tenantTSDBOptions are the options of u's TSDB: the ingester's with the
// tenant's overrides, which it records as applied (and sets up u's
// metadata store with).
func (i *Ingester) tenantTSDBOptions(u *tenantDB) *tsdb.Options {
	s := i.settings(u.id)
	o := i.cfg.tsdbOptions()
	o.OutOfOrderTimeWindow = s.oooWindowMs
	o.EnableExemplarStorage = s.maxExemplars > 0
	o.MaxExemplars = s.maxExemplars
	u.metadata.init(s.maxMetadata, s.maxMetadataPerMetric, func(n int) { i.countMetadataEvicted(u.id, n) })
	u.config.store(s)
	return o
}

// applyTenantConfig brings u's open TSDB up to date with the tenant's
// overrides. A failure is logged and retried on the next push; the push
// goes on with the settings in force.
func (i *Ingester) applyTenantConfig(u *tenantDB) {
	want := i.settings(u.id)
	if u.config.is(want) {
		return // the hot path
	}
	u.config.mu.Lock()
	defer u.config.mu.Unlock()
	if u.config.is(want) {
		return
	}
	conf := &config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig:      &config.TSDBConfig{OutOfOrderTimeWindow: want.oooWindowMs},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: want.maxExemplars},
	}}
	if err := u.db.ApplyConfig(conf); err != nil {
		i.log.Error("apply tenant overrides to tsdb", "tenant", u.id, "err", err)
		return
	}
	u.metadata.setLimits(want.maxMetadata, want.maxMetadataPerMetric)
	u.config.store(want)
	i.log.Info("applied tenant overrides", "tenant", u.id,
		"out_of_order_time_window", time.Duration(want.oooWindowMs)*time.Millisecond,
		"max_exemplars", want.maxExemplars, "max_metadata_per_user", want.maxMetadata,
		"max_metadata_per_metric", want.maxMetadataPerMetric)
}

// appliedOOOWindow is the out-of-order window in force for u.
func (u *tenantDB) appliedOOOWindow() time.Duration {
	return time.Duration(u.config.oooWindowMs.Load()) * time.Millisecond
}
