package ring

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

type member struct {
	id, zone string
	state    State
	age      time.Duration // heartbeat age at t0
}

func testRing(t testing.TB, cfg Config, members ...member) *Ring {
	t.Helper()
	store := NewMemStore()
	rnd := rand.New(rand.NewPCG(1, 2))
	require.NoError(t, store.Update(context.Background(), func(d *Desc) bool {
		for _, m := range members {
			d.Instances[m.id] = Instance{
				ID: m.id, Addr: m.id + ":9095", Zone: m.zone, State: m.state,
				Tokens: d.newTokens(m.id, 128, rnd), Heartbeat: t0.Add(-m.age).UnixMilli(),
			}
		}
		return true
	}))
	return New(cfg, store, func() time.Time { return t0 })
}

func ids(rs ReplicationSet) []string {
	var out []string
	for _, in := range rs.Instances {
		out = append(out, in.ID)
	}
	return out
}

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cfg           Config
		members       []member
		op            Operation
		wantN         int
		wantMaxErrors int
		wantErr       string
	}{
		{"rf1 one instance", Config{ReplicationFactor: 1}, []member{{"a", "", Active, 0}}, Write, 1, 0, ""},
		{"rf3 three instances", Config{ReplicationFactor: 3}, []member{{"a", "", Active, 0}, {"b", "", Active, 0}, {"c", "", Active, 0}}, Write, 3, 1, ""},
		{"rf3 only one instance in ring", Config{ReplicationFactor: 3}, []member{{"a", "", Active, 0}}, Write, 1, 0, ""},
		{"rf3 one stale heartbeat", Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute}, []member{{"a", "", Active, 0}, {"b", "", Active, 0}, {"c", "", Active, 2 * time.Minute}}, Write, 2, 0, ""},
		{"rf3 two stale heartbeats", Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute}, []member{{"a", "", Active, 0}, {"b", "", Active, 3 * time.Minute}, {"c", "", Active, 2 * time.Minute}}, Write, 0, 0, "1 of 3 replicas healthy, quorum needs 2"},
		{"joining takes no writes", Config{ReplicationFactor: 1}, []member{{"a", "", Joining, 0}}, Write, 0, 0, "too few healthy"},
		{"joining serves reads", Config{ReplicationFactor: 1}, []member{{"a", "", Joining, 0}}, Read, 1, 0, ""},
		{"leaving extends the write set", Config{ReplicationFactor: 1}, []member{{"a", "", Leaving, 0}, {"b", "", Active, 0}}, Write, 1, 0, ""},
		{"zones", Config{ReplicationFactor: 3, ZoneAwarenessEnabled: true}, []member{{"a1", "a", Active, 0}, {"a2", "a", Active, 0}, {"b1", "b", Active, 0}, {"b2", "b", Active, 0}, {"c1", "c", Active, 0}, {"c2", "c", Active, 0}}, Write, 3, 1, ""},
		{"empty", Config{ReplicationFactor: 1}, nil, Write, 0, 0, "no instances"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRing(t, tc.cfg, tc.members...)
			for token := uint32(0); token < 1<<32-1<<28; token += 1 << 28 {
				rs, err := r.Get(token, tc.op, nil)
				if tc.wantErr != "" {
					require.ErrorContains(t, err, tc.wantErr)
					continue
				}
				require.NoError(t, err)
				require.Len(t, rs.Instances, tc.wantN, ids(rs))
				require.Equal(t, tc.wantMaxErrors, rs.MaxErrors)
				seen := map[string]bool{}
				zones := map[string]bool{}
				for _, in := range rs.Instances {
					require.False(t, seen[in.ID], "instance %s twice", in.ID)
					seen[in.ID] = true
					if tc.cfg.ZoneAwarenessEnabled {
						require.False(t, zones[in.Zone], "zone %s twice in %v", in.Zone, ids(rs))
						zones[in.Zone] = true
					}
				}
			}
		})
	}
}

func TestGetIsStableAndClockwise(t *testing.T) {
	r := testRing(t, Config{ReplicationFactor: 1}, member{"a", "", Active, 0}, member{"b", "", Active, 0})
	ix := r.Index()
	tokens, owners, instances := ix.tokens, ix.owners, ix.instances
	for i := range tokens {
		rs, err := r.Get(tokens[i], Write, nil)
		require.NoError(t, err)
		require.Equal(t, instances[owners[i]].ID, rs.Instances[0].ID, "token %d is owned by its own instance", tokens[i])
	}
	// Past the last token the ring wraps to the first.
	rs, err := r.Get(tokens[len(tokens)-1]+1, Write, nil)
	if tokens[len(tokens)-1] != 1<<32-1 {
		require.NoError(t, err)
		require.Equal(t, instances[owners[0]].ID, rs.Instances[0].ID)
	}
}

func TestOwnershipBalance(t *testing.T) {
	// Issue 3: with 10 instances and 128 tokens each, the largest share owned
	// is at most 1.3x the smallest. Checked over many seeds, not one lucky one.
	for seed := uint64(0); seed < 20; seed++ {
		store := NewMemStore()
		rnd := rand.New(rand.NewPCG(seed, seed))
		require.NoError(t, store.Update(context.Background(), func(d *Desc) bool {
			for i := range 10 {
				id := fmt.Sprintf("ingester-%d", i)
				d.Instances[id] = Instance{ID: id, State: Active, Tokens: d.newTokens(id, 128, rnd)}
			}
			return true
		}))
		own := New(Config{ReplicationFactor: 1}, store, time.Now).Ownership()
		lo, hi, sum := 1.0, 0.0, 0.0
		for _, f := range own {
			lo, hi, sum = min(lo, f), max(hi, f), sum+f
		}
		require.InDelta(t, 1.0, sum, 1e-9)
		require.LessOrEqual(t, hi/lo, 1.3, "seed %d: shares %v", seed, own)
	}
}

func TestGetAllHealthy(t *testing.T) {
	zoned := func(ages ...time.Duration) []member {
		var out []member
		for i, age := range ages {
			z := string(rune('a' + i%3))
			out = append(out, member{fmt.Sprintf("%s%d", z, i/3), z, Active, age})
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		rf            int
		zones         bool
		members       []member
		wantN, maxErr int
		maxZones      int
		wantErr       string
	}{
		{"rf1", 1, false, []member{{"a", "", Active, 0}}, 1, 0, 0, ""},
		{"rf3 all up", 3, false, []member{{"a", "", Active, 0}, {"b", "", Active, 0}, {"c", "", Active, 0}}, 3, 1, 0, ""},
		{"rf3 one down", 3, false, []member{{"a", "", Active, 0}, {"b", "", Active, 0}, {"c", "", Active, time.Hour}}, 2, 0, 0, ""},
		{"rf3 two down", 3, false, []member{{"a", "", Active, 0}, {"b", "", Active, time.Hour}, {"c", "", Active, time.Hour}}, 0, 0, 0, "2 of 3 instances unhealthy"},
		{"left is gone", 1, false, []member{{"a", "", Active, 0}, {"b", "", Left, 0}}, 1, 0, 0, ""},
		// One of three left the ring: its replicas of older writes are
		// gone, so both remaining instances must answer.
		{"rf3 one left", 3, false, []member{{"a", "", Active, 0}, {"b", "", Active, 0}, {"c", "", Left, 0}}, 2, 0, 0, ""},
		{"zones all up", 3, true, zoned(0, 0, 0, 0, 0, 0), 6, 1, 1, ""},
		{"zones one down leaves its zone out", 3, true, zoned(0, time.Hour, 0, 0, 0, 0), 4, 0, 0, ""},
		{"zones two down in one zone", 3, true, zoned(0, time.Hour, 0, 0, time.Hour, 0), 4, 0, 0, ""},
		{"zones two zones down", 3, true, zoned(time.Hour, time.Hour, 0, 0, 0, 0), 0, 0, 0, `zones ["a" "b"] have unhealthy instances`},
		// Two zones at RF 3: the third zone may have held replicas of older
		// writes before it left, so neither remaining zone may fail.
		{"zones fewer than rf", 3, true, zoned(0, 0), 2, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRing(t, Config{ReplicationFactor: tc.rf, HeartbeatTimeout: time.Minute, ZoneAwarenessEnabled: tc.zones}, tc.members...)
			rs, err := r.GetAllHealthy(Read)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, rs.Instances, tc.wantN)
			require.Equal(t, tc.maxErr, rs.MaxErrors)
			require.Equal(t, tc.maxZones, rs.MaxUnavailableZones)
		})
	}
}

func TestTolerates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rs     ReplicationSet
		failed []string
		want   bool
	}{
		{"no failures", ReplicationSet{}, nil, true},
		{"within max errors", ReplicationSet{MaxErrors: 1}, []string{"a"}, true},
		{"over max errors without zones", ReplicationSet{MaxErrors: 1}, []string{"", ""}, false},
		{"one zone, many instances", ReplicationSet{MaxErrors: 1, MaxUnavailableZones: 1}, []string{"a", "a", "a"}, true},
		{"two zones", ReplicationSet{MaxErrors: 1, MaxUnavailableZones: 1}, []string{"a", "b"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.rs.Tolerates(tc.failed)) })
	}
}

func TestCountHealthy(t *testing.T) {
	r := testRing(t, Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute},
		member{"a", "", Active, 0}, member{"b", "", Active, time.Hour}, member{"c", "", Joining, 0}, member{"d", "", Left, 0})
	require.Equal(t, 1, r.CountHealthy(Write))
	require.Equal(t, 2, r.CountHealthy(Read))
}

// TestIndexReuse: a heartbeat publishes a new state; the token arrays stay,
// the instances (with the new heartbeat) are new. A token change rebuilds.
func TestIndexReuse(t *testing.T) {
	r := testRing(t, Config{ReplicationFactor: 1}, member{"a", "", Active, 0}, member{"b", "", Active, 0})
	before := r.Index()
	store := r.store.(*MemStore)
	require.NoError(t, store.Update(context.Background(), func(d *Desc) bool {
		setHeartbeat(d, "a", t0.UnixMilli()+1)
		return true
	}))
	after := r.Index()
	require.NotSame(t, before, after)
	require.Same(t, &before.tokens[0], &after.tokens[0], "tokens reused")
	require.Equal(t, t0.UnixMilli()+1, after.instances[0].Heartbeat)

	require.NoError(t, store.Update(context.Background(), func(d *Desc) bool {
		in := d.Instances["b"]
		in.Tokens = append(in.Tokens[:len(in.Tokens)-1:len(in.Tokens)-1], in.Tokens[len(in.Tokens)-1]-1)
		d.Instances["b"] = in
		return true
	}))
	rebuilt := r.Index()
	require.NotSame(t, &after.tokens[0], &rebuilt.tokens[0], "tokens rebuilt")
	require.Same(t, rebuilt, r.Index(), "unchanged state, same index")
}

func TestLifecycler(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unregister bool
		wantState  State
	}{
		{"unregister on shutdown", true, Left},
		{"keep tokens on shutdown", false, Leaving},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := NewMemStore()
			reg := prometheus.NewRegistry()
			lc := NewLifecycler(LifecyclerConfig{NumTokens: 16, HeartbeatPeriod: time.Millisecond, UnregisterOnShutdown: tc.unregister}, LifecyclerDeps{
				ID: "ing-1", Addr: "127.0.0.1:9095", Zone: "z1", Store: store, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Reg: reg,
			})
			ctx, cancel := context.WithCancel(context.Background())
			require.NoError(t, lc.Register(ctx))
			in := store.Get().Instances["ing-1"]
			require.Equal(t, Joining, in.State)
			require.Len(t, in.Tokens, 16)
			tokens := in.Tokens

			require.NoError(t, lc.SetState(ctx, Active))
			done := make(chan error)
			go func() { done <- lc.Run(ctx) }()
			require.Eventually(t, func() bool { return store.Get().Instances["ing-1"].Heartbeat > in.Heartbeat }, 10*time.Second, time.Millisecond)
			require.NoError(t, lc.SetState(ctx, Leaving)) // what cmd/strata does first on shutdown
			cancel()
			require.NoError(t, <-done)
			left := store.Get().Instances["ing-1"]
			require.Equal(t, tc.wantState, left.State)
			require.Equal(t, tokens, left.Tokens)

			// Registering again keeps the tokens the ring still has.
			require.NoError(t, lc.Register(context.Background()))
			require.Equal(t, Joining, store.Get().Instances["ing-1"].State)
			require.Len(t, store.Get().Instances["ing-1"].Tokens, 16)
		})
	}
}

func TestStatusHandler(t *testing.T) {
	r := testRing(t, Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute}, member{"a", "z", Active, 0}, member{"b", "z", Active, time.Hour})
	for _, tc := range []struct {
		name string
		h    http.Handler
		// JSON keys of the page and of each instance; HTML it shows and
		// does not show.
		wantKeys, wantInstanceKeys []string
		wantHTML, notHTML          []string
	}{
		{
			"ingester ring", r.StatusHandler(),
			[]string{"instances", "replication_factor"},
			[]string{"addr", "healthy", "heartbeat_age", "id", "ownership", "state", "tokens", "zone"},
			[]string{"<h1>Ingester ring</h1>", "Replication factor 3", "<td>a</td>", "<th>Tokens</th>", "<th>Ownership</th>", "<td>a:9095</td>"},
			nil,
		},
		{
			// Distributors own no keys: no replication factor, address,
			// tokens or ownership, only who is there and alive.
			"distributor ring", r.MembershipHandler("Distributor ring"),
			[]string{"instances"},
			[]string{"healthy", "heartbeat_age", "id", "state", "zone"},
			[]string{"<h1>Distributor ring</h1>", "<td>a</td>", "<td>z</td>", "<td>ACTIVE</td>", "<th>Heartbeat age</th>", "<td>1h0m0s</td>", `value="b">Forget`},
			[]string{"Replication factor", "Tokens", "Ownership", "a:9095", "%"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/ring", nil)
			req.Header.Set("Accept", "application/json")
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, req)
			var out struct {
				Instances []struct {
					ID      string
					State   string
					Healthy bool
				}
			}
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out))
			require.Len(t, out.Instances, 2)
			require.Equal(t, "ACTIVE", out.Instances[0].State)
			require.True(t, out.Instances[0].Healthy)
			require.False(t, out.Instances[1].Healthy)
			var keys struct {
				Instances []map[string]any `json:"instances"`
			}
			var page map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &keys))
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
			require.ElementsMatch(t, tc.wantKeys, slices.Collect(maps.Keys(page)))
			require.ElementsMatch(t, tc.wantInstanceKeys, slices.Collect(maps.Keys(keys.Instances[0])))

			w = httptest.NewRecorder()
			tc.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ring", nil))
			require.Contains(t, w.Header().Get("Content-Type"), "text/html")
			for _, s := range tc.wantHTML {
				require.Contains(t, w.Body.String(), s)
			}
			for _, s := range tc.notHTML {
				require.NotContains(t, w.Body.String(), s)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	var members []member
	for i := range 9 {
		members = append(members, member{fmt.Sprintf("ing-%d", i), fmt.Sprintf("z%d", i%3), Active, 0})
	}
	r := testRing(b, Config{ReplicationFactor: 3, ZoneAwarenessEnabled: true, HeartbeatTimeout: time.Minute}, members...)
	buf := make([]Instance, 0, 8)
	rnd := rand.New(rand.NewPCG(3, 4))
	tokens := make([]uint32, 2000)
	for i := range tokens {
		tokens[i] = rnd.Uint32()
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, tk := range tokens {
			if _, err := r.Get(tk, Write, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tokens)), "ns/series")
}
