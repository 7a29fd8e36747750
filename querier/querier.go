package querier

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/tenant"
)

// Deps are what the querier is built from.
type Deps struct {
	Ring    ReplicaSets     // *ring.Ring
	Clients IngesterClients // *clientpool.Pool
	Tenants tenant.Resolver
	// Limits are the per-tenant query limits (limits.go); nil means none.
	Limits *limits.Overrides
	Log    *slog.Logger
	// Reg receives strata_querier_* and the engine's prometheus_engine_*.
	Reg prometheus.Registerer
	// Build is what /api/v1/status/buildinfo reports.
	Build BuildInfo
	// Now is the clock of queries without a time; nil means time.Now.
	Now func() time.Time
	// TenantLabels caps the tenant label of the querier's metrics
	// (-metrics.max-tenant-labels), shared by every component of the
	// process; nil labels every tenant with its id.
	TenantLabels *tenant.LabelCap
	// StoreGateways reads long-term blocks; nil queries the ingesters only.
	StoreGateways *storequery.Client
}

// BuildInfo describes the running binary.
type BuildInfo = promapi.BuildInfo

// Querier serves the Prometheus HTTP API over the ingesters.
type Querier struct {
	cfg     Config
	log     *slog.Logger
	tenants tenant.Resolver
	build   BuildInfo
	now     func() time.Time

	fanout  *fanout
	sources []source
	parser  parser.Parser
	exprLim promapi.ExprLimits
	engine  *promql.Engine
	limits  *limits.Overrides // nil: no per-tenant query limits (limits.go)
	running tenantQueries     // queries evaluating, per tenant (limits.go)
	m       *metrics
	// tenantLabels is the tenant label of m; every request with a tenant
	// counts as its activity.
	tenantLabels *tenant.LabelCap
}

// New returns a Querier. It does no I/O: ingesters are dialed on first use.
func New(cfg Config, deps Deps) (*Querier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Ring == nil || deps.Clients == nil {
		return nil, errors.New("querier needs a ring and an ingester client pool")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	m := newMetrics(deps.Reg, deps.TenantLabels)
	f := &fanout{ring: deps.Ring, clients: deps.Clients, m: m, log: log, grace: cfg.IngesterStragglerGrace, since: time.Since}
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: cfg.EnableExperimentalFunctions})
	evalInterval := cfg.DefaultEvaluationInterval.Milliseconds()
	engine := promql.NewEngine(promql.EngineOpts{
		Logger: log,
		// Upstream's metric names (prometheus_engine_*), unprefixed: the
		// dashboards and alerts that exist for PromQL know them, and a
		// process has one engine, so they cannot collide.
		Reg:                      deps.Reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.Timeout,
		ActiveQueryTracker:       newQueryGate(cfg.MaxConcurrent, m),
		LookbackDelta:            cfg.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return evalInterval },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   p,
	})
	var sources []source
	if deps.StoreGateways == nil {
		sources = []source{ingesterSource{f}}
	} else {
		// Recent data from the ingesters, older from the store-gateways;
		// the windows overlap and the merge deduplicates.
		sources = []source{
			window{s: ingesterSource{f}, now: now, newerThan: cfg.QueryIngestersWithin},
			window{s: storeSource{deps.StoreGateways}, now: now, olderThan: cfg.QueryStoreAfter},
		}
	}
	return &Querier{
		cfg: cfg, log: log, tenants: deps.Tenants, build: deps.Build, now: now,
		fanout: f, sources: sources, parser: p, engine: engine,
		exprLim: promapi.ExprLimits{
			MaxBytes: cfg.MaxExpressionBytes, MaxOperators: cfg.MaxExpressionOperators,
			MaxSubquerySteps: int64(cfg.MaxSubquerySteps), DefaultSubqueryStep: cfg.DefaultEvaluationInterval,
			BytesFlag: "-querier.max-expression-bytes", OperatorsFlag: "-querier.max-expression-operators",
			SubqueryStepsFlag: "-querier.max-subquery-steps",
		},
		limits: deps.Limits, m: m, tenantLabels: deps.TenantLabels,
	}, nil
}

// Run has no background work: it waits for ctx and returns nil. In-flight
// requests end with the HTTP server's drain, which cancels their contexts.
func (q *Querier) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Queryable returns tenantID's view of every series, for the PromQL engine
// (and later the ruler).
func (q *Querier) Queryable(tenantID string) storage.Queryable {
	return queryable(q.sources, tenantID)
}

// ExemplarQueryable returns tenantID's exemplars.
func (q *Querier) ExemplarQueryable(tenantID string) storage.ExemplarQueryable {
	return exemplarQueryable{f: q.fanout, tenant: tenantID}
}

// Router is where RegisterRoutes mounts the API (*server.Server).
type Router interface {
	// Handle mounts h at pattern (http.ServeMux syntax, with a method),
	// measured under route.
	Handle(pattern, route string, h http.Handler)
}

// RegisterRoutes mounts the Prometheus HTTP API: GET and POST
// /api/v1/query, /query_range, /query_exemplars, /format_query, /labels,
// /series; GET /api/v1/label/{name}/values, /metadata, /status/buildinfo.
func (q *Querier) RegisterRoutes(r Router) {
	for _, rt := range q.routes() {
		r.Handle(rt.pattern, rt.name, rt.h)
	}
}

// Handler returns the API on a mux of its own.
func (q *Querier) Handler() http.Handler {
	mux := http.NewServeMux()
	q.RegisterRoutes(muxRouter{mux})
	return mux
}

type muxRouter struct{ mux *http.ServeMux }

func (m muxRouter) Handle(pattern, _ string, h http.Handler) { m.mux.Handle(pattern, h) }

// queryGate is the engine's promql.QueryTracker: it lets at most max
// queries evaluate at once; the others wait, their wait counted in the
// engine's timeout (as Prometheus' --query.max-concurrency does).
type queryGate struct {
	slots chan struct{}
	m     *metrics
}

func newQueryGate(max int, m *metrics) *queryGate {
	return &queryGate{slots: make(chan struct{}, max), m: m}
}

func (g *queryGate) GetMaxConcurrent() int { return cap(g.slots) }

func (g *queryGate) Insert(ctx context.Context, _ string) (int, error) {
	select {
	case g.slots <- struct{}{}:
		g.m.inflight.Inc()
		return 0, nil
	default:
	}
	g.m.queued.Inc()
	defer g.m.queued.Dec()
	select {
	case g.slots <- struct{}{}:
		g.m.inflight.Inc()
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (g *queryGate) Delete(int) {
	g.m.inflight.Dec()
	<-g.slots
}

func (g *queryGate) Close() error { return nil }
