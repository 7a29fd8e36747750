package ring_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/ring"
)

// BlockToken must never change: queriers and store-gateways of different
// versions must agree on every block's owners.
func TestBlockToken(t *testing.T) {
	id := ulid.MustParseStrict("01HZX3J1K9Q8S2V7W5Y4T6R0PA")
	require.Equal(t, uint32(0x21a69374), ring.BlockToken("t1", id))
	require.NotEqual(t, ring.BlockToken("t1", id), ring.BlockToken("t2", id), "the tenant counts")
}

// staticRing is a fixed membership.
type staticRing []ring.Instance

func (r staticRing) Index() *ring.Index { return ring.NewIndex(r) }

// lifecyclerRing registers n instances through real lifecyclers (even
// tokens) in zones z0, z1, ... (round robin over zones).
func lifecyclerRing(t *testing.T, n, zones int) *ring.Ring {
	t.Helper()
	store := ring.NewMemStore()
	for i := range n {
		lc := ring.NewLifecycler(ring.LifecyclerConfig{NumTokens: 64, HeartbeatPeriod: time.Second}, ring.LifecyclerDeps{
			ID: fmt.Sprintf("sg-%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i), Zone: fmt.Sprintf("z%d", i%zones),
			Store: store, Log: slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(),
		})
		require.NoError(t, lc.Register(context.Background()))
		require.NoError(t, lc.SetState(context.Background(), ring.Active))
	}
	return ring.New(ring.Config{}, store, time.Now)
}

func TestReplicas(t *testing.T) {
	for _, tc := range []struct {
		name          string
		n, zones, rf  int
		zoneAware     bool
		wantReplicas  int
		distinctZones bool
	}{
		{"rf 1", 3, 1, 1, false, 1, false},
		{"rf 3 of 5", 5, 1, 3, false, 3, false},
		{"rf above instances", 2, 1, 3, false, 2, false},
		{"zone aware", 6, 3, 3, true, 3, true},
		{"zone aware, fewer zones", 6, 2, 3, true, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := lifecyclerRing(t, tc.n, tc.zones)
			s := ring.NewBlockSharder(r, ring.Config{ReplicationFactor: tc.rf, ZoneAwarenessEnabled: tc.zoneAware}, time.Now)
			snap := s.Snapshot()
			primaries := map[string]int{}
			for i := range 300 {
				id := ulid.MustNew(uint64(i), nil)
				reps := snap.Replicas("t1", id, nil)
				require.Len(t, reps, tc.wantReplicas)
				seen, zones := map[string]bool{}, map[string]bool{}
				for _, in := range reps {
					require.False(t, seen[in.ID], "distinct instances")
					seen[in.ID] = true
					if tc.distinctZones {
						require.False(t, zones[in.Zone], "distinct zones")
					}
					zones[in.Zone] = true
					require.True(t, snap.Owns(in.ID, "t1", id))
				}
				require.Equal(t, reps, s.Snapshot().Replicas("t1", id, nil), "stable")
				primaries[reps[0].ID]++
			}
			require.Len(t, primaries, tc.n, "every instance is some block's primary")
		})
	}
}

// Health follows the heartbeat and the state, as the ring's read
// operation does; an unhealthy instance still owns its blocks.
func TestSnapshotHealthy(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	r := staticRing{
		{ID: "a", State: ring.Active, Heartbeat: now.UnixMilli(), Tokens: []uint32{1}},
		{ID: "b", State: ring.Active, Heartbeat: now.Add(-2 * time.Minute).UnixMilli(), Tokens: []uint32{2}},
		{ID: "c", State: ring.Joining, Heartbeat: now.UnixMilli(), Tokens: []uint32{3}},
	}
	s := ring.NewBlockSharder(r, ring.Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute}, func() time.Time { return now })
	snap := s.Snapshot()
	for i, want := range []bool{true, false, true} {
		require.Equal(t, want, snap.Healthy(&r[i]), r[i].ID)
	}
	require.Len(t, snap.Replicas("t1", ulid.MustNew(1, nil), nil), 3)
	require.True(t, snap.Has("b"))
	require.False(t, snap.Has("d"))
}
