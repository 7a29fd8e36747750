package ring

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestForgetButton(t *testing.T) {
	r := testRing(t, Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, member{"alive", "z", Active, 0}, member{"dead", "z", Active, time.Hour})
	post := func(id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/ring", strings.NewReader(url.Values{"forget": {id}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		r.StatusHandler().ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		id   string
		code int
	}{
		{"", http.StatusBadRequest},
		{"nope", http.StatusNotFound},
		{"alive", http.StatusConflict},
		{"dead", http.StatusSeeOther},
		{"dead", http.StatusNotFound},
	} {
		require.Equal(t, tc.code, post(tc.id).Code, "forget %q", tc.id)
	}
	require.Len(t, r.Instances(), 1)

	w := httptest.NewRecorder()
	r.StatusHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ring", nil))
	require.NotContains(t, w.Body.String(), `value="alive"`, "no forget button for a healthy instance")
}

func TestTokenTieGoesToLowerID(t *testing.T) {
	store := NewMemStore()
	// Many claimants, so that the sort is not an insertion sort that
	// happens to keep id order.
	require.NoError(t, store.Update(t.Context(), func(d *Desc) bool {
		for i := range 40 {
			id := fmt.Sprintf("ing-%02d", i)
			d.Instances[id] = Instance{ID: id, State: Active, Tokens: []uint32{100, uint32(1000 + i)}}
		}
		return true
	}))
	rs, err := New(Config{ReplicationFactor: 3}, store, time.Now).Get(50, Write, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"ing-00", "ing-01", "ing-02"}, ids(rs))
}

// TestForgetButtonGossip: through a GossipStore, forgetting writes a LEFT
// tombstone that gossip spreads, so that no peer brings the instance back.
func TestForgetButtonGossip(t *testing.T) {
	store, err := NewGossipStore(newSoloKV(t), IngesterRingKey, func() time.Time { return t0 })
	require.NoError(t, err)
	require.NoError(t, store.Update(t.Context(), func(d *Desc) bool {
		d.Instances["alive"] = Instance{ID: "alive", State: Active, Tokens: []uint32{1}, Heartbeat: t0.UnixMilli()}
		d.Instances["dead"] = Instance{ID: "dead", State: Active, Tokens: []uint32{2}, Heartbeat: t0.Add(-time.Hour).UnixMilli()}
		return true
	}))
	r := New(Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, store, func() time.Time { return t0 })
	req := httptest.NewRequest(http.MethodPost, "/ring", strings.NewReader(url.Values{"forget": {"dead"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	r.StatusHandler().ServeHTTP(w, req)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Equal(t, Left, store.Get().Instances["dead"].State, "a tombstone")
	require.Equal(t, []string{"alive"}, ids(ReplicationSet{Instances: r.Instances()}))
}
