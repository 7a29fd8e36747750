package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
	"github.com/strata-metrics/strata/tenant"
)

// modules is every component a process can run, in the order they start
// when their dependencies allow; they stop in reverse (shutdown.go).
func modules() []moduleDef {
	return []moduleDef{
		{name: "ingester", targets: []string{targetIngester}, new: newIngester},
		{name: "distributor", targets: []string{targetDistributor}, deps: []string{"ingester"}, new: newDistributor},
		{name: "bucket index loader", targets: []string{targetQuerier, targetStoreGateway, targetRuler}, new: newBucketIndexLoader},
		{name: "store-gateway", targets: []string{targetStoreGateway}, deps: []string{"bucket index loader"}, new: newStoreGateway},
		{name: "querier", targets: []string{targetQuerier}, deps: []string{"ingester", "store-gateway", "bucket index loader"}, new: newQuerier},
		{name: "query-frontend", targets: []string{targetFrontend}, deps: []string{"querier"}, new: newFrontend},
		{name: "compactor", targets: []string{targetCompactor}, new: newCompactor},
		{name: "ruler", targets: []string{targetRuler}, deps: []string{"distributor", "querier", "bucket index loader"}, new: newRuler},
		{name: "alertmanager", targets: []string{targetAlertmanager}, new: newAlertmanager},
	}
}

// wiring is what the modules of one process share: made before them, whatever
// the target. Every target gossips and sees every ring.
type wiring struct {
	cfg       *Config
	srv       *server.Server
	advertise string // the gRPC address this instance is reached at
	log       *slog.Logger
	reg       prometheus.Registerer

	kv       *gossip.KV
	ingStore *ring.GossipStore
	ingRing  *ring.Ring // the ingesters: where series go and are read from
	// distRing holds the distributors; distRing.CountHealthy(ring.Write)
	// is the number of healthy distributors a global limit is divided by.
	distStore *ring.GossipStore
	distRing  *ring.Ring
	// overrides are every tenant's limits: the flag defaults, replaced
	// field by field from -runtime-config.file, reloaded while running.
	overrides *limits.Overrides
	// authn checks credentials against -auth.tenants-file; nil without one.
	authn *auth.Authenticator
	// clusterSecrets, when set, go with every gRPC call to other components.
	clusterSecrets *auth.ClusterSecrets
	tenants        tenant.Resolver
	tenantLabels   *tenant.LabelCap

	// pool is the gRPC clients of ingesters and store-gateways; nil until
	// a module asks for it (clients), closed at shutdown.
	pool *clientpool.Pool

	blocks      // wire_blocks.go: long-term storage
	rulerWiring // wire_ruler.go: rules
	// frontendDownstream serves the querier's range queries to the
	// query-frontend of this process (wire_frontend.go); nil without one.
	frontendDownstream *http.ServeMux
}

// newWiring makes what every target shares and registers its handlers on
// srv. It does no network I/O.
func newWiring(cfg *Config, srv *server.Server, secrets *auth.ClusterSecrets, advertise string, log *slog.Logger, reg prometheus.Registerer) (*wiring, error) {
	w := &wiring{cfg: cfg, srv: srv, clusterSecrets: secrets, advertise: advertise, log: log, reg: reg}
	kv, err := gossip.New(memberlistConfig(cfg), cfg.Instance.ID, log.With("component", "memberlist"), reg)
	if err != nil {
		return nil, fmt.Errorf("create gossip: %w", err)
	}
	w.kv = kv
	if w.ingStore, err = ring.NewGossipStore(kv, ring.IngesterRingKey, time.Now); err != nil {
		return nil, err
	}
	if w.distStore, err = ring.NewGossipStore(kv, ring.DistributorRingKey, time.Now); err != nil {
		return nil, err
	}
	// Every process relays the HA election, whatever it runs.
	if err := distributor.RegisterHATrackerKey(kv); err != nil {
		return nil, err
	}
	w.ingRing = ring.New(cfg.Ring, w.ingStore, time.Now)
	w.distRing = ring.New(cfg.Ring, w.distStore, time.Now)

	w.overrides, err = limits.NewRuntimeOverrides(cfg.RuntimeConfig, cfg.Limits, log.With("component", "runtime-config"), reg)
	if err != nil {
		return nil, fmt.Errorf("create runtime config: %w", err)
	}
	// One cap on tenant-labelled series for every component of the process.
	w.tenantLabels, err = tenant.NewLabelCap(cfg.Metrics, reg, time.Now)
	if err != nil {
		return nil, fmt.Errorf("create tenant label cap: %w", err)
	}
	// With a tenants file, credentials decide the tenant and every route
	// but /ready requires them (/metrics: the operator's); otherwise
	// X-Scope-OrgID (from a gateway) names it.
	if cfg.Auth.Enabled() {
		w.authn, err = auth.New(cfg.Auth, log.With("component", "auth"), reg)
		if err != nil {
			return nil, fmt.Errorf("create authenticator: %w", err)
		}
	}
	w.tenants = cfg.Auth.Resolver(w.authn)
	w.tenants.WriteRefusal = promapi.WriteAuthError // JSON on the Prometheus API, plain text elsewhere
	// Every route: no other site's page may change anything here through a
	// browser's credentials (tenant.SameOriginWrites).
	srv.RequireAuth(func(h http.Handler) http.Handler { return tenant.SameOriginWrites(w.tenants.Middleware(h)) })
	// Operator pages: the admin tenant's only, with multi-tenancy.
	srv.SetOperatorGuard(w.operator, w.authn != nil)
	srv.Handle("/memberlist", "memberlist", w.operator(kv.MembersHandler()))
	srv.Handle("/ring", "ring", w.operator(w.ingRing.StatusHandler()))
	srv.Handle("/distributor/ring", "distributor_ring", w.operator(w.distRing.MembershipHandler("Distributor ring")))
	// With multi-tenancy a tenant sees only its own overrides there;
	// -runtime-config.admin-tenant sees everyone's.
	srv.Handle("/runtime_config", "runtime_config", w.overrides.Handler(w.tenants))
	if err := w.newBlocks(); err != nil {
		return nil, err
	}
	if err := w.newRulerRing(); err != nil {
		return nil, err
	}
	return w, nil
}

// clients returns the process' one pool of gRPC clients.
func (w *wiring) clients() *clientpool.Pool {
	if w.pool == nil {
		var opts []grpc.DialOption
		if w.clusterSecrets != nil {
			opts = append(opts, w.clusterSecrets.DialOption())
		}
		w.pool = clientpool.New(w.cfg.IngesterClient, w.reg, opts...)
	}
	return w.pool
}

// lifecycler returns this instance's lifecycler in the ring named name
// (its log and metric label), kept in store. tokensFile keeps its tokens
// across restarts; "" keeps none.
func (w *wiring) lifecycler(name string, cfg ring.LifecyclerConfig, store ring.Store, tokensFile string) *ring.Lifecycler {
	return ring.NewLifecycler(cfg, ring.LifecyclerDeps{
		ID: w.cfg.Instance.ID, Addr: w.advertise, Zone: w.cfg.Instance.Zone, Store: store,
		TokensFile: tokensFile,
		Log:        w.log.With("component", "ring", "ring", name),
		Reg:        prometheus.WrapRegistererWith(prometheus.Labels{"ring": name}, w.reg),
	})
}

// newIngester: JOINING until its WAL is replayed, then ACTIVE; LEAVING
// before the server drains. Blocks go to the bucket as they are cut; POST
// /ingester/flush cuts and ships the heads now (before a scale-down).
func newIngester(w *wiring) (*module, error) {
	cfg := w.cfg
	bkt, err := w.openBucket("ingester")
	if err != nil {
		return nil, err
	}
	ing, err := ingester.New(cfg.Ingester, ingester.Deps{
		DataDir: cfg.DataDir, Limits: w.overrides,
		// A global series limit becomes this ingester's share of it.
		RingShare: func() (int, int) {
			return w.ingRing.ReplicationFactor(), max(1, w.ingRing.CountHealthy(ring.Write))
		},
		Bucket: bkt, InstanceID: cfg.Instance.ID, TenantLabels: w.tenantLabels,
		// With a querier or store-gateway in this process (-target=all),
		// blocks the shipper indexed are visible to them at once. Read at
		// call time: every module is made before any runs.
		BlocksIndexed: func(ctx context.Context, tenant string) {
			if w.indexes != nil {
				w.indexes.Refresh(ctx, tenant)
			}
		},
		Log: w.log.With("component", "ingester"), Reg: w.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("create ingester: %w", err)
	}
	ingesterpb.RegisterIngesterServer(w.srv.GRPC(), ing)
	w.srv.Handle("/ingester/flush", "ingester_flush", w.operator(ing.FlushHandler()))
	stop := cfg.Server.ShutdownTimeout + stopTimeout
	if cfg.Ingester.FlushOnShutdown {
		stop += flushTimeout // cut every head into a block and upload it
	}
	return &module{
		run: ing.Run, stopTimeout: stop,
		ready: []readyCheck{{"ingester", ing.CheckReady}},
		ring: &ringMember{
			ring: "ingester", lc: w.lifecycler("ingester", cfg.Lifecycler, w.ingStore, filepath.Join(cfg.DataDir, ring.TokensFileName)),
			activeAfter: ing.CheckReady, readyWhenActive: true, leaveFirst: true,
		},
	}, nil
}

// newDistributor: ACTIVE in the distributor ring at once.
func newDistributor(w *wiring) (*module, error) {
	cfg := w.cfg
	dist, err := distributor.New(cfg.Distributor, distributor.Deps{
		Ring: w.ingRing, Clients: w.clients(), Limits: w.overrides, Tenants: w.tenants,
		Log: w.log.With("component", "distributor"), Reg: w.reg, Now: time.Now,
		// A global rate limit is divided among the healthy distributors;
		// at least this one, before it has joined its ring.
		HealthyDistributors: func() int { return max(1, w.distRing.CountHealthy(ring.Write)) },
		HAKV:                w.kv,
		TenantLabels:        w.tenantLabels,
	})
	if err != nil {
		return nil, fmt.Errorf("create distributor: %w", err)
	}
	w.dist = dist
	w.srv.Handle("/api/v1/push", "api_v1_push", dist.PushHandler())
	w.srv.Handle("/api/v1/write", "api_v1_push", dist.PushHandler())
	w.srv.Handle("/otlp/v1/metrics", "otlp_v1_metrics", dist.OTLPHandler())
	w.srv.Handle("/api/v1/otlp/v1/metrics", "otlp_v1_metrics", dist.OTLPHandler())
	// A distributor owns no series: one token, and it always leaves.
	lcCfg := cfg.Lifecycler
	lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = 1, true
	return &module{
		run:  dist.Run,
		ring: &ringMember{ring: "distributor", lc: w.lifecycler("distributor", lcCfg, w.distStore, ""), readyWhenActive: true},
	}, nil
}

// newQuerier reads the ingesters and, through the bucket index, the
// store-gateways.
func newQuerier(w *wiring) (*module, error) {
	cfg, build := w.cfg, currentBuild()
	sgClient := storequery.New(storequery.Deps{
		Blocks: bucketindex.IndexLister(w.indexes), Sharder: w.sharder,
		Clients: storequery.ConnFunc(w.clients().Conn), IngesterReplicationFactor: cfg.Ring.ReplicationFactor,
		Log: w.log.With("component", "querier"), Reg: w.reg,
	})
	q, err := querier.New(cfg.Querier, querier.Deps{
		Ring: w.ingRing, Clients: w.clients(), Limits: w.overrides, Tenants: w.tenants,
		Log: w.log.With("component", "querier"), Reg: w.reg,
		StoreGateways: sgClient,
		TenantLabels:  w.tenantLabels,
		Build: querier.BuildInfo{Version: build.Version, Revision: build.Revision, Branch: build.Branch, BuildDate: build.BuildDate,
			AlertmanagerConfigAPI: runsModule(cfg.Target, "alertmanager"),
			RulerConfigAPI:        runsModule(cfg.Target, "ruler")},
	})
	if err != nil {
		return nil, fmt.Errorf("create querier: %w", err)
	}
	// With the query-frontend in the process, range queries reach the
	// querier through it only (wire_frontend.go).
	var r querier.Router = w.srv
	if runsFrontend(cfg.Target) {
		w.frontendDownstream = http.NewServeMux()
		r = rangeDiverter{Router: w.srv, mux: w.frontendDownstream}
	}
	q.RegisterRoutes(r)
	// Also under /prometheus, Mimir's prefix, which its users type.
	q.RegisterRoutes(prefixRouter{r: r, prefix: "/prometheus"})
	w.querier = q
	return &module{run: q.Run}, nil
}

// prefixRouter mounts routes under a path prefix.
type prefixRouter struct {
	r      querier.Router
	prefix string
}

// Handle mounts h at pattern ("METHOD /path") with the prefix before the
// path.
func (p prefixRouter) Handle(pattern, route string, h http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	} else {
		method += " "
	}
	p.r.Handle(method+p.prefix+path, route, h)
}
