package clustertest

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// This file is the only one that calls the components' constructors.

// configs are the flag defaults of every component, as strata starts with
// no flags, then adjusted by Options.
type configs struct {
	ring       ring.Config
	lifecycler ring.LifecyclerConfig
	gossip     gossip.Config
	pool       clientpool.Config
	limits     limits.Limits
	ingester   ingester.Config
	dist       distributor.Config
	querier    querier.Config
}

func newConfigs(t testing.TB, o Options) *configs {
	t.Helper()
	c := &configs{}
	fs := flag.NewFlagSet("clustertest", flag.ContinueOnError)
	for _, r := range []interface{ RegisterFlags(*flag.FlagSet) }{
		&c.ring, &c.lifecycler, &c.gossip, &c.pool, &c.limits, &c.ingester, &c.dist, &c.querier,
	} {
		r.RegisterFlags(fs)
	}
	require.NoError(t, fs.Parse(nil))
	c.ring.ReplicationFactor = o.ReplicationFactor
	c.ring.ZoneAwarenessEnabled = o.Zones > 1
	c.lifecycler.HeartbeatPeriod = 100 * time.Millisecond
	c.lifecycler.NumTokens = 32
	c.lifecycler.UnregisterOnShutdown = !o.StayInRingOnShutdown
	// Ingesters here register one after another: no concurrent joiners to
	// wait for, and tests start many clusters.
	c.lifecycler.JoinObservePeriod = 200 * time.Millisecond
	c.gossip.BindAddress = "127.0.0.1:0"
	c.gossip.GossipInterval = 20 * time.Millisecond
	c.gossip.PullPushInterval = time.Second
	c.gossip.RejoinInterval = time.Second
	// A loaded test machine is slow to open a tenant's first TSDB; a
	// test of timeouts sets its own.
	c.dist.RemoteTimeout = 30 * time.Second
	// No store-gateways here: the ingesters hold every range.
	c.querier.QueryIngestersWithin = 0
	if o.Limits != nil {
		o.Limits(&c.limits)
	}
	if o.Ingester != nil {
		o.Ingester(&c.ingester)
	}
	if o.Distributor != nil {
		o.Distributor(&c.dist)
	}
	if o.Querier != nil {
		o.Querier(&c.querier)
	}
	return c
}

// newGossip returns an instance's gossip KV with the ingester ring's key
// registered, and the ring read through it.
func (c *configs) newGossip(t testing.TB, id string, join []string, log *slog.Logger, reg prometheus.Registerer) (*gossip.KV, ring.Store, *ring.Ring) {
	t.Helper()
	cfg := c.gossip
	cfg.Join = strings.Join(join, ",")
	kv, err := gossip.New(cfg, id, log.With("component", "memberlist"), reg)
	require.NoError(t, err)
	store, err := ring.NewGossipStore(kv, ring.IngesterRingKey, time.Now)
	require.NoError(t, err)
	return kv, store, ring.New(c.ring, store, time.Now)
}

// newIngester builds ingester id over dir, served on a loopback gRPC
// listener, and its lifecycler.
func (c *configs) newIngester(t testing.TB, id, zone, dir string, store ring.Store, log *slog.Logger, reg prometheus.Registerer) (*ingester.Ingester, *ring.Lifecycler, *grpc.Server, net.Listener) {
	t.Helper()
	ovr := limits.NewOverrides(c.limits)
	ing, err := ingester.New(c.ingester, ingester.Deps{DataDir: dir, Limits: ovr, InstanceID: id, Log: log.With("component", "ingester"), Reg: reg})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	ingesterpb.RegisterIngesterServer(srv, ing)
	lc := ring.NewLifecycler(c.lifecycler, ring.LifecyclerDeps{
		ID: id, Addr: lis.Addr().String(), Zone: zone, Store: store,
		TokensFile: filepath.Join(dir, ring.TokensFileName),
		Log:        log.With("component", "ring"), Reg: reg,
	})
	return ing, lc, srv, lis
}

// newDistributor builds a distributor pushing to the ingesters of r.
func (c *configs) newDistributor(t testing.TB, r *ring.Ring, pool *clientpool.Pool, log *slog.Logger, reg prometheus.Registerer) *distributor.Distributor {
	t.Helper()
	d, err := distributor.New(c.dist, distributor.Deps{
		Ring: r, Clients: pool, Limits: limits.NewOverrides(c.limits),
		Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Log:     log.With("component", "distributor"), Reg: reg, Now: time.Now,
	})
	require.NoError(t, err)
	return d
}

// newQuerier builds a querier reading the ingesters of r.
func (c *configs) newQuerier(t testing.TB, r *ring.Ring, pool *clientpool.Pool, log *slog.Logger, reg prometheus.Registerer) *querier.Querier {
	t.Helper()
	q, err := querier.New(c.querier, querier.Deps{
		Ring: r, Clients: pool, Limits: limits.NewOverrides(c.limits),
		Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Log:     log.With("component", "querier"), Reg: reg,
	})
	require.NoError(t, err)
	return q
}

func instanceID(kind string, i int) string { return fmt.Sprintf("%s-%d", kind, i) }
