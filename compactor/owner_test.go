package compactor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/ring"
)

// staticRing is a fixed ring membership.
type staticRing []ring.Instance

func (r staticRing) Index() *ring.Index { return ring.NewIndex(r) }

// A tenant's token must never change: compactors of different versions
// must agree on every tenant's owner.
func TestTenantToken(t *testing.T) {
	for tenant, want := range map[string]uint32{"tenant-1": 0x6a058252, "anonymous": 0x40d1c6c1, "": 0xbe9e32ae} {
		require.Equal(t, want, ring.StringToken(tenant), "%q", tenant)
	}
}

func TestOwnedTenants(t *testing.T) {
	now := time.Unix(1_000_000_000, 0)
	var tenants []string
	for i := range 200 {
		tenants = append(tenants, fmt.Sprintf("tenant-%d", i))
	}
	member := func(id string, tokens []uint32, state ring.State, age time.Duration) ring.Instance {
		return ring.Instance{ID: id, State: state, Tokens: tokens, Heartbeat: now.Add(-age).UnixMilli()}
	}
	spread := func(offset uint32) []uint32 {
		var out []uint32
		for i := range uint32(64) {
			out = append(out, i*(1<<26)+offset)
		}
		return out
	}
	owned := func(r staticRing, id string) []string {
		c := &Compactor{ring: r, id: id, hbTO: time.Minute, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
		return c.ownedTenants(tenants)
	}

	a, b := spread(0), spread(1<<25)
	healthy := staticRing{member("a", a, ring.Active, 0), member("b", b, ring.Active, 0)}
	ownedA, ownedB := owned(healthy, "a"), owned(healthy, "b")
	require.Len(t, append(ownedA, ownedB...), len(tenants), "every tenant has exactly one owner")
	require.NotEmpty(t, ownedA)
	require.NotEmpty(t, ownedB)
	require.NotContains(t, ownedA, ownedB[0])

	for _, tc := range []struct {
		name string
		r    staticRing
	}{
		{"b's heartbeat timed out", staticRing{member("a", a, ring.Active, 0), member("b", b, ring.Active, 2*time.Minute)}},
		{"b is leaving", staticRing{member("a", a, ring.Active, 0), member("b", b, ring.Leaving, 0)}},
		{"b is joining", staticRing{member("a", a, ring.Active, 0), member("b", b, ring.Joining, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tenants, owned(tc.r, "a"), "a takes b's tenants")
			require.Empty(t, owned(tc.r, "b"))
		})
	}
	require.Empty(t, owned(staticRing{}, "a"), "an empty ring: nobody owns anything")
	require.Equal(t, tenants, (&Compactor{}).ownedTenants(tenants), "no ring: one compactor owns all")
	same := staticRing{member("a", a, ring.Active, 0), member("b", a, ring.Active, 0)}
	require.Equal(t, tenants, owned(same, "a"), "a shared token belongs to the lower id")
	require.Empty(t, owned(same, "b"))
}

// A compactor registered in its ring by a Lifecycler owns the tenants at
// its first run.
func TestRunWithRing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	store := ring.NewMemStore()
	r := ring.New(ring.Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, store, time.Now)
	lc := ring.NewLifecycler(ring.LifecyclerConfig{NumTokens: RingNumTokens, HeartbeatPeriod: time.Second, UnregisterOnShutdown: true}, ring.LifecyclerDeps{
		ID: "compactor-1", Addr: "127.0.0.1:1", Store: store, Log: slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(),
	})
	require.NoError(t, lc.Register(ctx))

	d0 := day0()
	bkt := objstore.NewInMemBucket()
	for i := range 2 {
		upload(t, bkt, "t1", makeBlock(t, t.TempDir(), genData(3, d0, d0+2*hourMs)), fmt.Sprint(i))
	}
	reg := prometheus.NewRegistry()
	cfg := testConfig(t)
	c, err := New(cfg, Deps{Bucket: bkt, Ring: r, InstanceID: "compactor-1", HeartbeatTimeout: time.Minute, Log: slog.New(slog.DiscardHandler), Reg: reg})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	// JOINING owns nothing: the first run waits for ACTIVE.
	require.NoError(t, lc.SetState(ctx, ring.Active))
	require.Eventually(t, func() bool { return testutil.ToFloat64(c.m.runsCompleted) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(c.m.tenantsOwned))
	require.Equal(t, 1.0, testutil.ToFloat64(c.m.compactions.WithLabelValues("2h")))
}
