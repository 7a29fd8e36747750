package ring

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/gossip"
)

func TestChanges(t *testing.T) {
	base := &Desc{Instances: map[string]Instance{
		"a":    {ID: "a", State: Active, Tokens: []uint32{1}, Heartbeat: 100},
		"b":    {ID: "b", State: Active, Tokens: []uint32{2}, Heartbeat: 100},
		"gone": {ID: "gone", State: Left, Heartbeat: 50},
	}}
	for _, tc := range []struct {
		name  string
		edit  func(d *Desc)
		nowMs int64
		want  map[string]Instance // nil: no change
	}{
		{"nothing", func(*Desc) {}, 200, nil},
		{"heartbeat", func(d *Desc) { setHeartbeat(d, "a", 150) }, 150,
			map[string]Instance{"a": {ID: "a", State: Active, Tokens: []uint32{1}, Heartbeat: 150}}},
		{"clock did not move: version still grows", func(d *Desc) { setState(d, "a", Leaving, 100) }, 100,
			map[string]Instance{"a": {ID: "a", State: Leaving, Tokens: []uint32{1}, Heartbeat: 101}}},
		{"clock stepped back: version still grows", func(d *Desc) { setState(d, "a", Leaving, 20) }, 20,
			map[string]Instance{"a": {ID: "a", State: Leaving, Tokens: []uint32{1}, Heartbeat: 101}}},
		{"new instance keeps its heartbeat", func(d *Desc) { d.Instances["c"] = Instance{State: Joining, Heartbeat: 90} }, 90,
			map[string]Instance{"c": {ID: "c", State: Joining, Heartbeat: 90}}},
		{"deleted: a tombstone without tokens", func(d *Desc) { delete(d.Instances, "b") }, 300,
			map[string]Instance{"b": {ID: "b", State: Left, Heartbeat: 300}}},
		{"deleted with a slow clock", func(d *Desc) { delete(d.Instances, "b") }, 10,
			map[string]Instance{"b": {ID: "b", State: Left, Heartbeat: 101}}},
		{"deleting a tombstone is no change", func(d *Desc) { delete(d.Instances, "gone") }, 300, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := base.Clone()
			tc.edit(next)
			delta := changes(base, next, tc.nowMs)
			if tc.want == nil {
				require.Nil(t, delta)
				return
			}
			require.Equal(t, tc.want, delta.Instances)
			merged, _ := mustMerge(t, base, delta)
			for id, in := range tc.want {
				require.Equal(t, in, merged.Instances[id], "a local write always wins")
			}
		})
	}
}

func setHeartbeat(d *Desc, id string, ms int64) {
	in := d.Instances[id]
	in.Heartbeat = ms
	d.Instances[id] = in
}

func setState(d *Desc, id string, s State, ms int64) {
	in := d.Instances[id]
	in.State, in.Heartbeat = s, ms
	d.Instances[id] = in
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func gossipConfig(ttl time.Duration, seeds ...string) gossip.Config {
	var cfg gossip.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.BindAddress = "127.0.0.1:0"
	cfg.Join = strings.Join(seeds, ",")
	cfg.GossipInterval = 20 * time.Millisecond
	cfg.PullPushInterval = 500 * time.Millisecond
	cfg.RejoinInterval = time.Second
	if ttl > 0 {
		cfg.LeftTombstoneTTL = ttl
	}
	return cfg
}

// gossipNode is one process' gossip KV and its two ring stores.
type gossipNode struct {
	name      string
	kv        *gossip.KV
	ing, dist *GossipStore
	reg       *prometheus.Registry
}

// startGossipNode starts a KV on loopback; before runs before Run (to seed
// the store with stale state). The node stops when the test ends.
func startGossipNode(t *testing.T, name string, cfg gossip.Config, before func(*gossipNode)) *gossipNode {
	t.Helper()
	n := &gossipNode{name: name, reg: prometheus.NewRegistry()}
	var err error
	n.kv, err = gossip.New(cfg, name, discard, n.reg)
	require.NoError(t, err)
	n.ing, err = NewGossipStore(n.kv, IngesterRingKey, time.Now)
	require.NoError(t, err)
	n.dist, err = NewGossipStore(n.kv, DistributorRingKey, time.Now)
	require.NoError(t, err)
	if before != nil {
		before(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.kv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return n.kv.Addr() != "" }, 10*time.Second, 5*time.Millisecond, "%s starts", name)
	return n
}

// view is what must agree across members: every instance's state, address,
// zone and tokens (heartbeats move all the time).
func view(d *Desc) map[string]string {
	out := map[string]string{}
	for id, in := range d.Instances {
		out[id] = fmt.Sprintf("%s %s %s %v", in.State, in.Addr, in.Zone, in.Tokens)
	}
	return out
}

// TestGossipRingConverges: five processes with real memberlist on loopback,
// each registering an ingester at the same time, agree on one ring; a
// leaving ingester's LEFT reaches everyone.
func TestGossipRingConverges(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const n = 5
	nodes := []*gossipNode{startGossipNode(t, "node-0", gossipConfig(0), nil)}
	for i := 1; i < n; i++ {
		nodes = append(nodes, startGossipNode(t, fmt.Sprintf("node-%d", i), gossipConfig(0, nodes[0].kv.Addr(), nodes[i-1].kv.Addr()), nil))
	}

	var wg sync.WaitGroup
	cancels := make([]context.CancelFunc, n)
	done := make([]chan struct{}, n)
	for i, nd := range nodes {
		lc := NewLifecycler(LifecyclerConfig{NumTokens: 32, HeartbeatPeriod: 100 * time.Millisecond, UnregisterOnShutdown: true}, LifecyclerDeps{
			ID: fmt.Sprintf("ing-%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9100+i), Zone: fmt.Sprintf("z%d", i%3),
			Store: nd.ing, Log: discard, Reg: nd.reg,
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], done[i] = cancel, make(chan struct{})
		wg.Go(func() {
			defer close(done[i])
			if err := lc.Register(ctx); err != nil {
				t.Error(err)
				return
			}
			if err := lc.SetState(ctx, Active); err != nil {
				t.Error(err)
				return
			}
			_ = lc.Run(ctx)
		})
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	})

	converged := func(want int, check func(map[string]string) bool) func() bool {
		return func() bool {
			first := view(nodes[0].ing.Get())
			if len(first) != want || !check(first) {
				return false
			}
			for _, nd := range nodes[1:] {
				if !maps.Equal(first, view(nd.ing.Get())) {
					return false
				}
			}
			return true
		}
	}
	allActive := func(v map[string]string) bool {
		for _, s := range v {
			if !strings.HasPrefix(s, "ACTIVE ") {
				return false
			}
		}
		return true
	}
	require.Eventually(t, converged(n, allActive), 20*time.Second, 10*time.Millisecond, "all members agree on %d ACTIVE ingesters", n)
	// Memberlist's own member list converges on its own schedule, not with
	// the ring state (which may arrive through a third member).
	require.Eventually(t, func() bool {
		for _, nd := range nodes {
			if len(nd.kv.Members()) != n {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "every member lists %d members", n)
	r := New(Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute}, nodes[3].ing, time.Now)
	rs, err := r.GetAllHealthy(Write)
	require.NoError(t, err)
	require.Len(t, rs.Instances, n)
	for i := range n {
		require.Empty(t, nodes[0].ing.Get().tokenConflicts(fmt.Sprintf("ing-%d", i)))
	}

	// ing-4 shuts down: its LEFT reaches every member.
	cancels[4]()
	<-done[4]
	require.Eventually(t, converged(n, func(v map[string]string) bool {
		return strings.HasPrefix(v["ing-4"], "LEFT ")
	}), 20*time.Second, 10*time.Millisecond, "every member sees ing-4 LEFT")
	rs, err = r.GetAllHealthy(Write)
	require.NoError(t, err)
	require.Len(t, rs.Instances, n-1)
}

// TestGossipRingTombstones: a LEFT instance does not come back through a
// stale peer's push/pull, expires after the TTL, and a stale peer that
// arrives after the expiry does not bring it back either.
func TestGossipRingTombstones(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const ttl = 3 * time.Second
	ctx := context.Background()
	a := startGossipNode(t, "a", gossipConfig(ttl), nil)
	b := startGossipNode(t, "b", gossipConfig(ttl, a.kv.Addr()), nil)
	state := func(n *gossipNode, id string) string {
		if in, ok := n.ing.Get().Instances[id]; ok {
			return in.State.String()
		}
		return "absent"
	}
	put := func(s *GossipStore, id string, st State) {
		require.NoError(t, s.Update(ctx, func(d *Desc) bool {
			in := d.Instances[id]
			in.ID, in.Addr, in.State, in.Heartbeat, in.Tokens = id, id+":9095", st, time.Now().UnixMilli(), []uint32{uint32(len(id))}
			d.Instances[id] = in
			return true
		}))
	}

	put(a.ing, "x", Active)
	require.Eventually(t, func() bool { return state(b, "x") == "ACTIVE" }, 10*time.Second, 5*time.Millisecond)
	stale := b.ing.Get().Clone()
	put(a.ing, "x", Left)
	require.Eventually(t, func() bool { return state(b, "x") == "LEFT" }, 10*time.Second, 5*time.Millisecond)

	// A peer that still has x ACTIVE joins: its push/pull carries x and its
	// own entry s; the tombstone wins everywhere.
	withStale := func(own string) func(*gossipNode) {
		return func(n *gossipNode) {
			require.NoError(t, n.ing.Update(ctx, func(d *Desc) bool {
				maps.Copy(d.Instances, stale.Instances)
				d.Instances[own] = Instance{ID: own, State: Active, Heartbeat: time.Now().Add(time.Hour).UnixMilli()}
				return true
			}))
		}
	}
	s := startGossipNode(t, "stale-1", gossipConfig(ttl, a.kv.Addr()), withStale("s"))
	require.Eventually(t, func() bool { return state(a, "s") == "ACTIVE" }, 10*time.Second, 5*time.Millisecond, "a merged the stale peer's state")
	require.Equal(t, "LEFT", state(a, "x"))
	require.Eventually(t, func() bool { return state(s, "x") == "LEFT" }, 10*time.Second, 5*time.Millisecond)

	// The tombstone expires everywhere.
	require.Eventually(t, func() bool {
		return state(a, "x") == "absent" && state(b, "x") == "absent" && state(s, "x") == "absent"
	}, 2*ttl, 10*time.Millisecond, "the tombstone expires after the TTL")

	// A peer that was away longer than the TTL still has x ACTIVE: it does
	// not bring x back, and drops it itself.
	s2 := startGossipNode(t, "stale-2", gossipConfig(ttl, a.kv.Addr()), withStale("s2"))
	require.Eventually(t, func() bool { return state(a, "s2") == "ACTIVE" }, 10*time.Second, 5*time.Millisecond, "a merged the second stale peer's state")
	require.Equal(t, "absent", state(a, "x"))
	require.Eventually(t, func() bool { return state(s2, "x") == "absent" }, 2*ttl, 10*time.Millisecond)
	require.Equal(t, "absent", state(a, "x"))
	require.Equal(t, "absent", state(b, "x"))
}

// TestGossipStoreForget: deleting an instance (the ring page's forget) is a
// tombstone through a GossipStore, and Get returns a new pointer exactly
// when the state changed.
func TestGossipStoreForget(t *testing.T) {
	kv, err := gossip.New(gossipConfig(0), "solo", discard, prometheus.NewRegistry())
	require.NoError(t, err)
	s, err := NewGossipStore(kv, IngesterRingKey, func() time.Time { return time.UnixMilli(5000) })
	require.NoError(t, err)
	_, err = NewGossipStore(kv, IngesterRingKey, time.Now)
	require.ErrorContains(t, err, "already registered")

	empty := s.Get()
	require.Empty(t, empty.Instances)
	require.Same(t, empty, s.Get())
	ctx := context.Background()
	require.NoError(t, s.Update(ctx, func(d *Desc) bool {
		d.Instances["dead"] = Instance{ID: "dead", State: Active, Tokens: []uint32{7}, Heartbeat: 1000}
		return true
	}))
	d1 := s.Get()
	require.NotSame(t, empty, d1)
	require.NoError(t, s.Update(ctx, func(*Desc) bool { return false }))
	require.NoError(t, s.Update(ctx, func(*Desc) bool { return true }))
	require.Same(t, d1, s.Get(), "no change, no new pointer")

	require.NoError(t, s.Update(ctx, func(d *Desc) bool {
		delete(d.Instances, "dead")
		return true
	}))
	require.Equal(t, Instance{ID: "dead", State: Left, Heartbeat: 5000}, s.Get().Instances["dead"])
	require.Equal(t, Active, d1.Instances["dead"].State, "published states are never modified")

	rs, err := New(Config{ReplicationFactor: 1}, s, time.Now).GetAllHealthy(Read)
	require.ErrorIs(t, err, ErrEmpty, "a tombstone is not in the ring: %v", rs)
}

// BenchmarkGossipStoreGet: Get sits on the push path, once per series.
func BenchmarkGossipStoreGet(b *testing.B) {
	kv, err := gossip.New(gossipConfig(0), "solo", discard, prometheus.NewRegistry())
	require.NoError(b, err)
	s, err := NewGossipStore(kv, IngesterRingKey, time.Now)
	require.NoError(b, err)
	require.NoError(b, s.Update(context.Background(), func(d *Desc) bool {
		maps.Copy(d.Instances, bigDesc(10).Instances)
		return true
	}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if len(s.Get().Instances) != 10 {
				b.Fatal("wrong ring")
			}
		}
	})
}

func newSoloKV(t *testing.T) *gossip.KV {
	kv, err := gossip.New(gossipConfig(0), "solo", discard, prometheus.NewRegistry())
	require.NoError(t, err)
	return kv
}
