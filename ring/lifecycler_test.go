package ring

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func testLifecycler(store Store, id, tokensFile string) *Lifecycler {
	return NewLifecycler(LifecyclerConfig{NumTokens: 16, HeartbeatPeriod: time.Hour}, LifecyclerDeps{
		ID: id, Addr: id + ":9095", Store: store, TokensFile: tokensFile, Log: discard, Reg: prometheus.NewRegistry(),
	})
}

func TestLifecyclerTokensFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), TokensFileName)
	lc := testLifecycler(NewMemStore(), "ing-1", path)
	require.NoError(t, lc.Register(ctx))
	saved, err := LoadTokensFile(path)
	require.NoError(t, err)
	require.Len(t, saved, 16)

	// A restart into a ring that forgot it claims the same tokens.
	store := NewMemStore()
	require.NoError(t, testLifecycler(store, "ing-1", path).Register(ctx))
	require.Equal(t, saved, store.Get().Instances["ing-1"].Tokens)
}

func TestLifecyclerSettlesTokenConflicts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), TokensFileName)
	store := NewMemStore()
	b := testLifecycler(store, "ing-b", path)
	require.NoError(t, b.Register(ctx))
	mine := store.Get().Instances["ing-b"].Tokens
	// ing-a joined at the same time on another member and took two of them.
	require.NoError(t, store.Update(ctx, func(d *Desc) bool {
		d.Instances["ing-a"] = Instance{ID: "ing-a", State: Active, Tokens: []uint32{mine[3], mine[7]}, Heartbeat: time.Now().UnixMilli()}
		return true
	}))
	b.heartbeat(ctx)
	d := store.Get()
	require.Empty(t, d.tokenConflicts("ing-b"))
	require.Len(t, d.Instances["ing-b"].Tokens, 16)
	saved, err := LoadTokensFile(path)
	require.NoError(t, err)
	require.Equal(t, d.Instances["ing-b"].Tokens, saved, "the tokens file follows")
}

func TestLifecyclerReassertsItsEntry(t *testing.T) {
	ctx := context.Background()
	kv := newSoloKV(t)
	store, err := NewGossipStore(kv, IngesterRingKey, time.Now)
	require.NoError(t, err)
	lc := testLifecycler(store, "ing-1", "")
	require.NoError(t, lc.Register(ctx))
	require.NoError(t, lc.SetState(ctx, Active))
	// Someone forgets it by mistake: a tombstone.
	require.NoError(t, store.Update(ctx, func(d *Desc) bool {
		delete(d.Instances, "ing-1")
		return true
	}))
	require.Equal(t, Left, store.Get().Instances["ing-1"].State)
	lc.heartbeat(ctx)
	require.Equal(t, Active, store.Get().Instances["ing-1"].State, "the next heartbeat brings it back")
}
