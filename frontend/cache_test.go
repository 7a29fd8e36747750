package frontend

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newEmbeddedCache(4*(entrySize("k0", make([]byte, 100))), func() time.Time { return now }, newMetrics(prometheus.NewRegistry()))
	ctx := context.Background()
	val := func(b byte) []byte { v := make([]byte, 100); v[0] = b; return v }

	require.NoError(t, c.Set(ctx, "k0", val(0), time.Minute))
	got, ok, err := c.Get(ctx, "k0")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, val(0), got)

	t.Run("least recently used goes first", func(t *testing.T) {
		for i, k := range []string{"k1", "k2", "k3"} {
			require.NoError(t, c.Set(ctx, k, val(byte(i+1)), time.Minute))
		}
		_, ok, _ := c.Get(ctx, "k0") // k0 is now the most recent
		require.True(t, ok)
		require.NoError(t, c.Set(ctx, "k4", val(4), time.Minute))
		_, ok, _ = c.Get(ctx, "k1")
		require.False(t, ok, "k1 was the least recently used")
		_, ok, _ = c.Get(ctx, "k0")
		require.True(t, ok)
	})

	t.Run("an entry expires after its TTL", func(t *testing.T) {
		require.NoError(t, c.Set(ctx, "short", val(9), time.Second))
		now = now.Add(2 * time.Second)
		_, ok, _ := c.Get(ctx, "short")
		require.False(t, ok)
		_, ok, _ = c.Get(ctx, "k0")
		require.True(t, ok, "the others live a minute")
	})

	t.Run("a value over a quarter of the cache is not kept", func(t *testing.T) {
		require.NoError(t, c.Set(ctx, "big", make([]byte, 200), time.Minute))
		_, ok, _ := c.Get(ctx, "big")
		require.False(t, ok)
	})
}

// TestTenantSlots: a tenant's legs in flight stop at its limit, other
// tenants are not held up, and a freed slot lets the next leg in. A done
// context tells a leg that would wait from one that gets a slot.
func TestTenantSlots(t *testing.T) {
	s := tenantSlots{m: map[string]*tenantSlot{}}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var releases []func()
	for range 2 {
		r, err := s.acquire(done, "a", 2)
		require.NoError(t, err)
		releases = append(releases, r)
	}
	_, err := s.acquire(done, "a", 2)
	require.ErrorIs(t, err, context.Canceled, "a third leg of tenant a waits")
	rb, err := s.acquire(done, "b", 2)
	require.NoError(t, err, "tenant b has its own slots")
	rb()
	releases[0]()
	r, err := s.acquire(done, "a", 2)
	require.NoError(t, err, "a freed slot is taken")
	r()
	releases[1]()
	require.Empty(t, s.m, "a tenant without legs leaves no entry")
}
