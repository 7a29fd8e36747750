package ring

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// shareOf returns each live instance's share of the token space.
func shareOf(d *Desc) map[string]float64 {
	type tok struct {
		t  uint32
		id string
	}
	var ring []tok
	for id, in := range d.Instances {
		if in.State == Left {
			continue
		}
		for _, t := range in.Tokens {
			ring = append(ring, tok{t, id})
		}
	}
	slices.SortFunc(ring, func(a, b tok) int { return int(int64(a.t) - int64(b.t)) })
	out := map[string]float64{}
	for i := range ring {
		span := uint64(ring[i].t) - uint64(ring[(i+len(ring)-1)%len(ring)].t)
		if i == 0 {
			span = uint64(ring[0].t) + (1<<32 - uint64(ring[len(ring)-1].t))
		}
		out[ring[i].id] += float64(span) / (1 << 32)
	}
	return out
}

// TestConcurrentJoinersOwnEvenShares: three ingesters, each on its own
// process' gossip KV, register at the same instant, each on the view its
// process has (often an empty ring), and turn ACTIVE after the observe
// period; repeated on fresh clusters. Every run must end with each owning
// a third of the ring within one percentage point.
//
// The bound: three instances placing 128 tokens one after another (each
// around the others' final tokens, what settling reproduces) stay within
// 0.2 points of a third over 2,000 seeds, also when the second re-places
// after the third; three placements on an empty ring, as before settling,
// are within 1 point in only 12% of seeds (within 8.8 points at worst),
// and the old placement (one offset for all slots) owned 48/26/26%.
func TestConcurrentJoinersOwnEvenShares(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	const runs, n, tokens = 5, 3, 128
	for run := range runs {
		t.Run(fmt.Sprint("run-", run), func(t *testing.T) {
			nodes := []*gossipNode{startGossipNode(t, "node-0", gossipConfig(0), nil)}
			for i := 1; i < n; i++ {
				nodes = append(nodes, startGossipNode(t, fmt.Sprintf("node-%d", i), gossipConfig(0, nodes[0].kv.Addr()), nil))
			}
			require.Eventually(t, func() bool {
				for _, nd := range nodes {
					if len(nd.kv.Members()) != n {
						return false
					}
				}
				return true
			}, 10*time.Second, 5*time.Millisecond, "gossip members join")

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			t.Cleanup(func() {
				cancel()
				wg.Wait()
			})
			dir := t.TempDir()
			gate := make(chan struct{})
			for i, nd := range nodes {
				id := fmt.Sprintf("ing-%d", i)
				lc := NewLifecycler(LifecyclerConfig{
					NumTokens: tokens, HeartbeatPeriod: 100 * time.Millisecond, UnregisterOnShutdown: true,
					JoinObservePeriod: time.Second,
				}, LifecyclerDeps{
					ID: id, Addr: id + ":9095", Store: nd.ing, TokensFile: filepath.Join(dir, id),
					Log: discard, Reg: prometheus.NewRegistry(),
				})
				wg.Go(func() {
					<-gate
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
			close(gate)

			require.Eventually(t, func() bool {
				first := view(nodes[0].ing.Get())
				if len(first) != n {
					return false
				}
				for _, s := range first {
					if s[:len("ACTIVE")] != "ACTIVE" {
						return false
					}
				}
				for _, nd := range nodes[1:] {
					if !maps.Equal(first, view(nd.ing.Get())) {
						return false
					}
				}
				return true
			}, 20*time.Second, 10*time.Millisecond, "all members agree on %d ACTIVE ingesters", n)

			d := nodes[0].ing.Get()
			shares := shareOf(d)
			t.Logf("shares %v", shares)
			for id, s := range shares {
				require.InDelta(t, 1.0/n, s, 0.01, "%s owns %.1f%% of the ring: %v", id, 100*s, shares)
			}
			for id, in := range d.Instances {
				saved, err := LoadTokensFile(filepath.Join(dir, id))
				require.NoError(t, err)
				require.Equal(t, in.Tokens, saved, "%s's tokens file holds its settled tokens", id)
			}
		})
	}
}

// TestLifecyclerSettlesOnlyNewTokensWhileJoining: an instance JOINING with
// new tokens places them again around an instance registered before it that
// it had not seen; never for one registered after it, never once ACTIVE,
// and never tokens from its tokens file.
func TestLifecyclerSettlesOnlyNewTokensWhileJoining(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	path := filepath.Join(t.TempDir(), TokensFileName)
	newLC := func() *Lifecycler {
		return NewLifecycler(LifecyclerConfig{NumTokens: 128, HeartbeatPeriod: time.Hour}, LifecyclerDeps{
			ID: "ing-b", Addr: "ing-b:9095", Store: store, TokensFile: path, Log: discard, Reg: prometheus.NewRegistry(),
		})
	}
	b := newLC()
	require.NoError(t, b.Register(ctx))
	registered := store.Get().Instances["ing-b"].RegisteredAt
	rnd := rand.New(rand.NewPCG(5, 6))
	// put adds an instance as another member would have: its tokens placed
	// on an empty ring, at the same moment as ing-b.
	put := func(id string, state State, registeredAt int64) {
		require.NoError(t, store.Update(ctx, func(d *Desc) bool {
			d.Instances[id] = Instance{ID: id, State: state, Tokens: NewDesc().newTokens(id, 128, rnd), RegisteredAt: registeredAt, Heartbeat: time.Now().UnixMilli()}
			return true
		}))
	}
	tokensOf := func(id string) []uint32 { return store.Get().Instances[id].Tokens }

	put("ing-a", Joining, registered-1)
	before := tokensOf("ing-b")
	b.heartbeat(ctx)
	require.NotEqual(t, before, tokensOf("ing-b"), "placed again around ing-a, registered first")
	for id, s := range shareOf(store.Get()) {
		require.InDelta(t, 0.5, s, 0.01, "%s", id)
	}
	saved, err := LoadTokensFile(path)
	require.NoError(t, err)
	require.Equal(t, tokensOf("ing-b"), saved, "the tokens file follows")
	require.Equal(t, 1.0, testutil.ToFloat64(b.tokensReplaced))

	settled := tokensOf("ing-b")
	put("ing-c", Joining, registered+1)
	b.heartbeat(ctx)
	require.Equal(t, settled, tokensOf("ing-b"), "ing-c registered later: it places around ing-b")

	require.NoError(t, b.SetState(ctx, Active))
	put("ing-a", Joining, registered-1) // ing-a moved
	b.heartbeat(ctx)
	require.Equal(t, settled, tokensOf("ing-b"), "ACTIVE: tokens stay")

	// A restart: the tokens file's tokens stay, JOINING or not.
	require.NoError(t, store.Update(ctx, func(d *Desc) bool {
		delete(d.Instances, "ing-b")
		return true
	}))
	b = newLC()
	require.NoError(t, b.Register(ctx))
	put("ing-a", Joining, 1)
	b.heartbeat(ctx)
	require.NoError(t, b.SetState(ctx, Active))
	require.Equal(t, settled, tokensOf("ing-b"), "tokens from the file never move")
}

// TestLifecyclerPlacesAroundSettledInstances: an instance ACTIVE when a new
// one registers is in its view even if it sorts after it (the same
// millisecond with a higher id, or a clock ahead): its tokens no longer
// move, so the new one must place around them.
func TestLifecyclerPlacesAroundSettledInstances(t *testing.T) {
	ctx := context.Background()
	store := NewMemStore()
	rnd := rand.New(rand.NewPCG(7, 8))
	require.NoError(t, store.Update(ctx, func(d *Desc) bool {
		d.Instances["ing-z"] = Instance{ID: "ing-z", State: Active, Tokens: NewDesc().newTokens("ing-z", 128, rnd),
			RegisteredAt: time.Now().Add(time.Hour).UnixMilli(), Heartbeat: time.Now().UnixMilli()}
		return true
	}))
	lc := NewLifecycler(LifecyclerConfig{NumTokens: 128, HeartbeatPeriod: time.Hour}, LifecyclerDeps{
		ID: "ing-a", Addr: "ing-a:9095", Store: store, TokensFile: filepath.Join(t.TempDir(), TokensFileName), Log: discard, Reg: prometheus.NewRegistry(),
	})
	require.NoError(t, lc.Register(ctx))
	require.NoError(t, lc.SetState(ctx, Active))
	// Placed around ing-z, halves within 0.3 points (0.2 at worst over
	// 2,000 seeds for three instances); placed on an empty ring beside it,
	// 2 points apart is common.
	for id, s := range shareOf(store.Get()) {
		require.InDelta(t, 0.5, s, 0.003, "%s", id)
	}
}
