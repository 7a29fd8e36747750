package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/alertmanager"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/proto/rulerpb"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/ruler"
)

// rulerWiring is what the ruler module uses of the process: the querier
// and distributor of -target=all, made in process without routes or ring
// membership for -target=ruler.
type rulerWiring struct {
	querier *querier.Querier
	dist    *distributor.Distributor

	rulerStore *ring.GossipStore
	rulerRing  *ring.Ring

	// The alertmanager ring, which every process sees (the ruler sends
	// through it), and this process' alertmanager module, once made (nil
	// without one).
	amStore *ring.GossipStore
	amRing  *ring.Ring
	am      *alertmanager.MultitenantAlertmanager
}

// newRulerRing makes the ruler ring and the alertmanager ring, which
// every process sees.
func (w *wiring) newRulerRing() error {
	var err error
	if w.rulerStore, err = ring.NewGossipStore(w.kv, ruler.RingKey, time.Now); err != nil {
		return err
	}
	w.rulerRing = ring.New(ring.Config{ReplicationFactor: 1, HeartbeatTimeout: w.cfg.Ring.HeartbeatTimeout}, w.rulerStore, time.Now)
	w.srv.Handle("/ruler/ring", "ruler_ring", w.operator(w.rulerRing.StatusHandlerTitled("Ruler ring")))
	if w.amStore, err = ring.NewGossipStore(w.kv, alertmanager.RingKey, time.Now); err != nil {
		return err
	}
	w.amRing = ring.New(ring.Config{ReplicationFactor: w.cfg.Alertmanager.ReplicationFactor, HeartbeatTimeout: w.cfg.Ring.HeartbeatTimeout}, w.amStore, time.Now)
	return nil
}

// newRuler evaluates the rule groups the ruler ring gives this instance:
// queries through the process' querier, results through its distributor
// (both made here for -target=ruler). ACTIVE in its ring at once; it
// leaves the ring at shutdown so that its groups move at once.
func newRuler(w *wiring) (*module, error) {
	cfg := w.cfg
	var runs []func(context.Context) error
	q := w.querier
	if q == nil {
		sgClient := storequery.New(storequery.Deps{
			Blocks: bucketindex.IndexLister(w.indexes), Sharder: w.sharder,
			Clients: storequery.ConnFunc(w.clients().Conn), IngesterReplicationFactor: cfg.Ring.ReplicationFactor,
			Log: w.log.With("component", "ruler-querier"), Reg: w.reg,
		})
		var err error
		q, err = querier.New(cfg.Querier, querier.Deps{
			Ring: w.ingRing, Clients: w.clients(), Limits: w.overrides, Tenants: w.tenants,
			Log: w.log.With("component", "ruler-querier"), Reg: w.reg, StoreGateways: sgClient, TenantLabels: w.tenantLabels,
		})
		if err != nil {
			return nil, fmt.Errorf("create the ruler's querier: %w", err)
		}
	}
	d := w.dist
	if d == nil {
		var err error
		d, err = distributor.New(cfg.Distributor, distributor.Deps{
			Ring: w.ingRing, Clients: w.clients(), Limits: w.overrides, Tenants: w.tenants,
			Log: w.log.With("component", "ruler-distributor"), Reg: w.reg, Now: time.Now,
			HealthyDistributors: func() int { return max(1, w.distRing.CountHealthy(ring.Write)) },
			HAKV:                w.kv, TenantLabels: w.tenantLabels,
		})
		if err != nil {
			return nil, fmt.Errorf("create the ruler's distributor: %w", err)
		}
		runs = append(runs, d.Run)
	}
	var store ruler.RuleStore
	if cfg.Ruler.RulePath != "" {
		store = ruler.NewStore(cfg.Ruler, nil, w.log)
	} else {
		bkt, err := w.openBucket("ruler")
		if err != nil {
			return nil, err
		}
		store = ruler.NewStore(cfg.Ruler, bkt, w.log)
	}
	r, err := ruler.New(cfg.Ruler, ruler.Deps{
		Store:     store,
		Queryable: func(t string) storage.Queryable { return q.Queryable(t) },
		Push: func(ctx context.Context, t string, req *remotewrite.Request) error {
			_, err := d.Push(ctx, t, req)
			return err
		},
		Limits: w.overrides, Ring: w.rulerRing, Peers: rulerPeers(w.clients().Conn),
		// Without an Alertmanager URL, alerts go to the cluster's own
		// (this process' module, or the alertmanager ring's replicas).
		Alertmanager: alertmanager.NewSender(w.amRing, w.clients(), func() *alertmanager.MultitenantAlertmanager { return w.am }),
		InstanceID:   cfg.Instance.ID, HeartbeatTimeout: cfg.Ring.HeartbeatTimeout,
		Tenants: w.tenants, TenantLabels: w.tenantLabels,
		Log: w.log.With("component", "ruler"), Reg: w.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("create ruler: %w", err)
	}
	var rt ruler.Router = w.srv
	if runsModule(cfg.Target, "alertmanager") {
		// Mimir's layout: the Alertmanager's configuration API has the root
		// /api/v1/alerts; Prometheus' alert list stays at
		// /prometheus/api/v1/alerts.
		rt = skipRoutes{rt: w.srv, skip: map[string]bool{"GET /api/v1/alerts": true}}
	}
	r.RegisterRoutes(rt)
	rulerpb.RegisterRulerServer(w.srv.GRPC(), r.Server())
	runs = append(runs, r.Run)
	lcCfg := cfg.Lifecycler
	lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = ruler.RingNumTokens, true
	return &module{
		// Stopping sends the tenants' queued alerts first, each notifier
		// for at most -ruler.notification-drain-timeout.
		stopTimeout: cfg.Ruler.NotificationDrainTimeout + stopTimeout,
		run: func(ctx context.Context) error {
			errs := make(chan error, len(runs))
			for _, run := range runs {
				go func() { errs <- run(ctx) }()
			}
			var first error
			for range runs {
				if err := <-errs; err != nil && first == nil {
					first = err
				}
			}
			return first
		},
		ring: &ringMember{ring: "ruler", lc: w.lifecycler("ruler", lcCfg, w.rulerStore, "")},
	}, nil
}

// rulerPeers reaches other rulers over the process' gRPC connections
// (the cluster's TLS and secrets, as queriers reach store-gateways).
type rulerPeers func(addr string) (grpc.ClientConnInterface, error)

func (p rulerPeers) Get(addr string) (rulerpb.RulerClient, error) {
	conn, err := p(addr)
	if err != nil {
		return nil, err
	}
	return rulerpb.NewRulerClient(conn), nil
}

// skipRoutes is a router that leaves out the patterns in skip.
type skipRoutes struct {
	rt   ruler.Router
	skip map[string]bool
}

func (s skipRoutes) Handle(pattern, route string, h http.Handler) {
	if !s.skip[pattern] {
		s.rt.Handle(pattern, route, h)
	}
}

// runsModule reports whether -target=target runs the module called name.
func runsModule(target, name string) bool {
	for _, d := range modules() {
		if d.name == name {
			return d.runsTarget(target)
		}
	}
	return false
}
