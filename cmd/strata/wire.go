package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
	"github.com/strata-metrics/strata/tenant"
)

// components is what one process runs; a nil field is not part of its
// -target. Every target gossips and sees both rings.
type components struct {
	kv       *gossip.KV
	ingRing  *ring.Ring // the ingesters: where series go and are read from
	distRing *ring.Ring // the distributors: how many share a global limit
	pool     *clientpool.Pool
	// overrides are every tenant's limits: the flag defaults, replaced
	// field by field from -runtime-config.file, reloaded while running.
	overrides *limits.Overrides
	// authn checks credentials against -auth.tenants-file; nil without one.
	authn *auth.Authenticator

	ing   *ingester.Ingester
	ingLC *ring.Lifecycler
	dist  *distributor.Distributor
	// distLC announces this distributor; distRing.CountHealthy(ring.Write)
	// is the number of healthy distributors a global limit is divided by.
	distLC *ring.Lifecycler
	q      *querier.Querier

	// blocks is long-term storage: bucket, store-gateway, compactor.
	blocks *blocksComponents
}

func (c *components) runsIngester() bool    { return c.ing != nil }
func (c *components) runsDistributor() bool { return c.dist != nil }
func (c *components) runsQuerier() bool     { return c.q != nil }

// newComponents creates the components of cfg.Target and registers their
// handlers on srv. It does no network I/O. advertise is the gRPC address
// this instance is reached at.
func newComponents(cfg *Config, srv *server.Server, advertise string, log *slog.Logger, reg prometheus.Registerer) (*components, error) {
	target := cfg.Target
	runs := func(t string) bool { return target == targetAll || target == t }
	c := &components{}

	kv, err := gossip.New(memberlistConfig(cfg), cfg.Instance.ID, log.With("component", "memberlist"), reg)
	if err != nil {
		return nil, fmt.Errorf("create gossip: %w", err)
	}
	c.kv = kv
	ingStore, err := ring.NewGossipStore(kv, ring.IngesterRingKey, time.Now)
	if err != nil {
		return nil, err
	}
	distStore, err := ring.NewGossipStore(kv, ring.DistributorRingKey, time.Now)
	if err != nil {
		return nil, err
	}
	// Every process relays the HA election, whatever it runs.
	if err := distributor.RegisterHATrackerKey(kv); err != nil {
		return nil, err
	}
	c.ingRing = ring.New(cfg.Ring, ingStore, time.Now)
	c.distRing = ring.New(cfg.Ring, distStore, time.Now)
	srv.Handle("/memberlist", "memberlist", kv.MembersHandler())
	srv.Handle("/ring", "ring", c.ingRing.StatusHandler())
	srv.Handle("/distributor/ring", "distributor_ring", c.distRing.MembershipHandler("Distributor ring"))

	overrides, err := limits.NewRuntimeOverrides(cfg.RuntimeConfig, cfg.Limits, log.With("component", "runtime-config"), reg)
	if err != nil {
		return nil, fmt.Errorf("create runtime config: %w", err)
	}
	c.overrides = overrides
	// One cap on tenant-labelled series for every component of the process.
	tenantLabels, err := tenant.NewLabelCap(cfg.Metrics, reg, time.Now)
	if err != nil {
		return nil, fmt.Errorf("create tenant label cap: %w", err)
	}
	// With a tenants file, credentials decide the tenant and every route
	// but /ready and /metrics requires them; otherwise X-Scope-OrgID (from
	// a gateway) names it.
	if cfg.Auth.Enabled() {
		c.authn, err = auth.New(cfg.Auth, log.With("component", "auth"), reg)
		if err != nil {
			return nil, fmt.Errorf("create authenticator: %w", err)
		}
	}
	tenants := cfg.Auth.Resolver(c.authn)
	tenants.WriteRefusal = promapi.WriteAuthError // JSON on the Prometheus API, plain text elsewhere
	srv.RequireAuth(tenants.Middleware)
	// With multi-tenancy a tenant sees only its own overrides there;
	// -runtime-config.admin-tenant sees everyone's.
	srv.Handle("/runtime_config", "runtime_config", overrides.Handler(tenants))
	if runs(targetDistributor) || runs(targetQuerier) {
		c.pool = clientpool.New(cfg.IngesterClient, reg)
	}

	retention := func(t string) time.Duration { return overrides.For(t).CompactorBlocksRetentionPeriod }
	c.blocks, err = newBlocksComponents(cfg, srv, kv, c.pool, tenants, advertise, runs, retention, log, reg)
	if err != nil {
		return nil, err
	}

	if runs(targetIngester) {
		c.ing, err = ingester.New(cfg.Ingester, cfg.DataDir, overrides, log.With("component", "ingester"), reg)
		if err != nil {
			return nil, fmt.Errorf("create ingester: %w", err)
		}
		ingesterpb.RegisterIngesterServer(srv.GRPC(), c.ing)
		c.ing.SetTenantLabels(tenantLabels)
		// Blocks go to the bucket as they are cut; POST /ingester/flush
		// cuts and ships the heads now (before a scale-down).
		ingBkt, err := c.blocks.openBucket(cfg, "ingester", log, reg)
		if err != nil {
			return nil, err
		}
		if err := c.ing.EnableShipping(ingester.ShipDeps{Bucket: ingBkt, InstanceID: cfg.Instance.ID, Reg: reg, TenantLabels: tenantLabels}); err != nil {
			return nil, err
		}
		srv.Handle("/ingester/flush", "ingester_flush", adminOnly(tenants, cfg.RuntimeConfig.AdminTenant, c.ing.FlushHandler()))
		// A global series limit becomes this ingester's share of it.
		c.ing.SetRingShare(func() (int, int) {
			return c.ingRing.ReplicationFactor(), max(1, c.ingRing.CountHealthy(ring.Write))
		})
		c.ingLC = ring.NewLifecycler(cfg.Lifecycler, ring.LifecyclerDeps{
			ID: cfg.Instance.ID, Addr: advertise, Zone: cfg.Instance.Zone, Store: ingStore,
			TokensFile: filepath.Join(cfg.DataDir, ring.TokensFileName),
			Log:        log.With("component", "ring", "ring", "ingester"),
			Reg:        prometheus.WrapRegistererWith(prometheus.Labels{"ring": "ingester"}, reg),
		})
	}

	if runs(targetDistributor) {
		c.dist, err = distributor.New(cfg.Distributor, distributor.Deps{
			Ring: c.ingRing, Clients: c.pool, Limits: overrides, Tenants: tenants,
			Log: log.With("component", "distributor"), Reg: reg, Now: time.Now,
			// A global rate limit is divided among the healthy distributors;
			// at least this one, before it has joined its ring.
			HealthyDistributors: func() int { return max(1, c.distRing.CountHealthy(ring.Write)) },
			HAKV:                kv,
			TenantLabels:        tenantLabels,
		})
		if err != nil {
			return nil, fmt.Errorf("create distributor: %w", err)
		}
		srv.Handle("/api/v1/push", "api_v1_push", c.dist.PushHandler())
		srv.Handle("/api/v1/write", "api_v1_push", c.dist.PushHandler())
		// A distributor owns no series: one token, and it always leaves.
		lcCfg := cfg.Lifecycler
		lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = 1, true
		c.distLC = ring.NewLifecycler(lcCfg, ring.LifecyclerDeps{
			ID: cfg.Instance.ID, Addr: advertise, Zone: cfg.Instance.Zone, Store: distStore,
			Log: log.With("component", "ring", "ring", "distributor"),
			Reg: prometheus.WrapRegistererWith(prometheus.Labels{"ring": "distributor"}, reg),
		})
	}

	if runs(targetQuerier) {
		c.q, err = querier.New(cfg.Querier, querier.Deps{
			Ring: c.ingRing, Clients: c.pool, Limits: overrides, Tenants: tenants,
			Log: log.With("component", "querier"), Reg: reg,
			StoreGateways: c.blocks.sgClient,
			TenantLabels:  tenantLabels,
			Build:         querier.BuildInfo{Version: version, Revision: revision, Branch: branch, BuildDate: buildDate},
		})
		if err != nil {
			return nil, fmt.Errorf("create querier: %w", err)
		}
		c.q.RegisterRoutes(srv)
	}
	return c, nil
}
