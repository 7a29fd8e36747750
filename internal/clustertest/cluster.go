package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/ring"
)

// Options shape a cluster; the zero value is one ingester, one distributor
// and one querier at replication factor 1.
type Options struct {
	Ingesters, Distributors, Queriers int // 0 means 1
	// Zones spreads the ingesters round-robin over zone-a, zone-b, ...;
	// more than one turns zone awareness on.
	Zones int
	// ReplicationFactor is the ring's; 0 means min(3, Ingesters).
	ReplicationFactor int
	// StayInRingOnShutdown keeps a gracefully stopped ingester in the ring
	// as LEAVING, with its tokens, until it restarts (a StatefulSet
	// restart); by default it leaves the ring.
	StayInRingOnShutdown bool
	// These adjust the flag defaults of every instance.
	Limits      func(*limits.Limits)
	Ingester    func(*ingester.Config)
	Distributor func(*distributor.Config)
	Querier     func(*querier.Config)
	// Log receives every component's logs; nil discards them.
	Log *slog.Logger
}

// Cluster is a running cluster. Its methods are for the test goroutine.
type Cluster struct {
	cfg *configs
	log *slog.Logger

	mu        sync.Mutex
	instances map[string]*Instance
	order     []string // instance ids, in start order
}

// Instance is one component with its gossip and goroutines. Exactly one
// of Ingester, Distributor and Querier is set while it runs.
type Instance struct {
	ID, Zone string
	Dir      string // the ingester's data directory, kept across restarts
	Addr     string // the ingester's gRPC address
	Reg      *prometheus.Registry
	Ring     *ring.Ring // the ingester ring as this instance sees it
	KV       *gossip.KV
	// Lifecycler announces the ingester in the ring.
	Lifecycler *ring.Lifecycler

	Ingester    *ingester.Ingester
	Distributor *distributor.Distributor
	Querier     *querier.Querier

	// tasks are the instance's goroutines by name; Stop and Kill stop
	// them in the orders their docs give.
	tasks   map[string]*task
	stopped bool
	closeFn []func() // after every task has stopped
}

// Start starts the cluster and waits until every distributor and querier
// sees every ingester ACTIVE. Cleanup stops it.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	o.Ingesters, o.Distributors, o.Queriers = max(1, o.Ingesters), max(1, o.Distributors), max(1, o.Queriers)
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = min(3, o.Ingesters)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: newConfigs(t, o), log: log, instances: map[string]*Instance{}}
	// The first TempDir registers its removal; the cluster must stop
	// before it (cleanups run last first).
	_ = t.TempDir()
	t.Cleanup(c.stopAll)
	for i := 1; i <= o.Ingesters; i++ {
		zone := ""
		if o.Zones > 0 {
			zone = fmt.Sprintf("zone-%c", 'a'+(i-1)%o.Zones)
		}
		c.startIngester(t, instanceID("ingester", i), zone, t.TempDir())
	}
	for i := 1; i <= o.Distributors; i++ {
		c.startDistributor(t, instanceID("distributor", i))
	}
	for i := 1; i <= o.Queriers; i++ {
		c.startQuerier(t, instanceID("querier", i))
	}
	c.WaitActive(t, o.Ingesters)
	return c
}

// Instance returns the running or stopped instance id ("ingester-1",
// "distributor-1", "querier-1").
func (c *Cluster) Instance(t testing.TB, id string) *Instance {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	in, ok := c.instances[id]
	require.True(t, ok, "no instance %q", id)
	return in
}

// running returns the running instances whose id starts with kind.
func (c *Cluster) running(kind string) []*Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Instance
	for _, id := range c.order {
		if in := c.instances[id]; !in.stopped && strings.HasPrefix(id, kind+"-") {
			out = append(out, in)
		}
	}
	return out
}

// gossipSeeds are the gossip addresses of the running instances.
func (c *Cluster) gossipSeeds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.order {
		if in := c.instances[id]; !in.stopped && in.KV.Addr() != "" {
			out = append(out, in.KV.Addr())
		}
	}
	return out
}

func (c *Cluster) add(in *Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.instances[in.ID]; !ok {
		c.order = append(c.order, in.ID)
	}
	c.instances[in.ID] = in
}

// startGossip starts in's gossip, joined to the running instances.
func (c *Cluster) startGossip(t testing.TB, in *Instance) ring.Store {
	t.Helper()
	kv, store, r := c.cfg.newGossip(t, in.ID, c.gossipSeeds(), c.log.With("instance", in.ID), in.Reg)
	in.KV, in.Ring = kv, r
	in.tasks = map[string]*task{}
	in.goTask("gossip", kv.Run)
	poll(t, in.ID+" gossip listening", func() bool { return kv.Addr() != "" })
	return store
}

func (c *Cluster) startIngester(t testing.TB, id, zone, dir string) *Instance {
	t.Helper()
	in := &Instance{ID: id, Zone: zone, Dir: dir, Reg: prometheus.NewRegistry()}
	store := c.startGossip(t, in)
	log := c.log.With("instance", id)
	ing, lc, srv, lis := c.cfg.newIngester(t, id, zone, dir, store, log, in.Reg)
	in.Ingester, in.Lifecycler, in.Addr = ing, lc, lis.Addr().String()
	in.goTask("grpc", func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Stop() }()
		return srv.Serve(lis)
	})
	in.goTask("ingester", ing.Run)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, lc.Register(ctx), "register %s", id)
	in.goTask("lifecycler", lc.Run)
	// JOINING until the WAL is replayed, then ACTIVE, as cmd/strata does.
	in.goTask("activation", func(ctx context.Context) error {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ing.CheckReady(ctx) != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		if err := lc.SetState(ctx, ring.Active); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	})
	c.add(in)
	return in
}

func (c *Cluster) startDistributor(t testing.TB, id string) *Instance {
	t.Helper()
	in := &Instance{ID: id, Reg: prometheus.NewRegistry()}
	c.startGossip(t, in)
	pool := clientpool.New(c.cfg.pool, in.Reg)
	in.closeFn = append(in.closeFn, func() { _ = pool.Close() })
	in.Distributor = c.cfg.newDistributor(t, in.Ring, pool, c.log.With("instance", id), in.Reg)
	in.goTask("distributor", in.Distributor.Run)
	c.add(in)
	return in
}

func (c *Cluster) startQuerier(t testing.TB, id string) *Instance {
	t.Helper()
	in := &Instance{ID: id, Reg: prometheus.NewRegistry()}
	c.startGossip(t, in)
	pool := clientpool.New(c.cfg.pool, in.Reg)
	in.closeFn = append(in.closeFn, func() { _ = pool.Close() })
	in.Querier = c.cfg.newQuerier(t, in.Ring, pool, c.log.With("instance", id), in.Reg)
	in.goTask("querier", in.Querier.Run)
	c.add(in)
	return in
}

// WaitActive waits until every running distributor and querier sees n
// ACTIVE ingesters in the ring.
func (c *Cluster) WaitActive(t testing.TB, n int) {
	t.Helper()
	for _, in := range append(c.running("distributor"), c.running("querier")...) {
		poll(t, fmt.Sprintf("%s sees %d ACTIVE ingesters", in.ID, n), func() bool {
			active := 0
			for _, i := range in.Ring.Instances() {
				if i.State == ring.Active {
					active++
				}
			}
			return active == n
		})
	}
}

// WaitRing waits until every running distributor and querier sees the
// instance id in state (ok false: not in the ring at all).
func (c *Cluster) WaitRing(t testing.TB, id string, state ring.State, ok bool) {
	t.Helper()
	for _, in := range append(c.running("distributor"), c.running("querier")...) {
		poll(t, fmt.Sprintf("%s sees %s in state %v (%v)", in.ID, id, state, ok), func() bool {
			for _, i := range in.Ring.Instances() {
				if i.ID == id {
					return ok && i.State == state
				}
			}
			return !ok
		})
	}
}

// Stop shuts instance id down as strata does on SIGTERM: an ingester
// goes LEAVING (and the others see it), stops serving, closes its TSDBs,
// then leaves the ring (or stays LEAVING, see
// Options.StayInRingOnShutdown) and the gossip cluster.
func (c *Cluster) Stop(t testing.TB, id string) {
	t.Helper()
	in := c.Instance(t, id)
	require.False(t, in.stopped, "%s is stopped already", id)
	if in.Lifecycler != nil {
		in.tasks["activation"].stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := in.Lifecycler.SetState(ctx, ring.Leaving)
		cancel()
		require.NoError(t, err, "%s LEAVING", id)
		c.WaitRing(t, id, ring.Leaving, true)
	}
	require.NoError(t, in.stop(gracefulOrder...))
}

// gracefulOrder is the order Stop stops an instance's tasks in.
var gracefulOrder = []string{"activation", "grpc", "distributor", "querier", "ingester", "lifecycler", "gossip"}

// Kill stops instance id abruptly: its gossip goes first, so the others
// never hear it leave the ring (it stays ACTIVE there until its heartbeat
// times out), and its gRPC server drops every connection. The TSDBs are
// still closed: a process cannot lose its own page cache in-process, so
// what a restart finds is what the WAL holds.
func (c *Cluster) Kill(t testing.TB, id string) {
	t.Helper()
	in := c.Instance(t, id)
	require.False(t, in.stopped, "%s is stopped already", id)
	_ = in.stop("gossip", "grpc", "activation", "lifecycler", "ingester", "distributor", "querier")
}

// Restart starts the stopped ingester id again over its data directory
// (the same tokens, its WAL replayed) and waits until it is ACTIVE.
func (c *Cluster) Restart(t testing.TB, id string) *Instance {
	t.Helper()
	old := c.Instance(t, id)
	require.True(t, old.stopped, "%s is running", id)
	require.NotEmpty(t, old.Dir, "only ingesters restart")
	in := c.startIngester(t, id, old.Zone, old.Dir)
	c.WaitRing(t, id, ring.Active, true)
	return in
}

// Ingester returns the running ingester id.
func (c *Cluster) Ingester(t testing.TB, id string) *ingester.Ingester {
	t.Helper()
	in := c.Instance(t, id)
	require.NotNil(t, in.Ingester, "%s is not an ingester", id)
	return in.Ingester
}

// Distributor returns the first running distributor.
func (c *Cluster) Distributor(t testing.TB) *distributor.Distributor {
	t.Helper()
	ds := c.running("distributor")
	require.NotEmpty(t, ds, "no distributor runs")
	return ds[0].Distributor
}

// Querier returns the first running querier.
func (c *Cluster) Querier(t testing.TB) *querier.Querier {
	t.Helper()
	qs := c.running("querier")
	require.NotEmpty(t, qs, "no querier runs")
	return qs[0].Querier
}

// stopAll stops every running instance: queriers and distributors first,
// then ingesters.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	ids := slices.Clone(c.order)
	c.mu.Unlock()
	ingesters := func(id string) bool { return strings.HasPrefix(id, "ingester-") }
	ids = append(slices.DeleteFunc(slices.Clone(ids), ingesters), slices.DeleteFunc(ids, func(id string) bool { return !ingesters(id) })...)
	for _, id := range ids {
		c.mu.Lock()
		in := c.instances[id]
		c.mu.Unlock()
		if !in.stopped {
			_ = in.stop(gracefulOrder...)
		}
	}
}

// task is one goroutine of an instance with its own context, so that
// Stop and Kill stop them in their order.
type task struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (in *Instance) goTask(name string, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	tk := &task{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		tk.err = f(ctx)
	}()
	in.tasks[name] = tk
}

func (tk *task) stop() {
	tk.cancel()
	<-tk.done
}

// stop stops the named tasks in order (names it lacks are skipped), then
// runs closeFn; it returns the tasks' errors.
func (in *Instance) stop(order ...string) error {
	in.stopped = true
	var errs []error
	for _, name := range order {
		tk, ok := in.tasks[name]
		if !ok {
			continue
		}
		tk.stop()
		if tk.err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", in.ID, name, tk.err))
		}
	}
	for _, f := range in.closeFn {
		f()
	}
	return errors.Join(errs...)
}

// poll waits until cond holds, failing t after 30s.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
