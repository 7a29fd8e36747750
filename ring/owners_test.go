package ring

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStringToken(t *testing.T) {
	for _, k := range []string{"", "tenant-1", "t1/01HZX3J1K9Q8S2V7W5Y4T6R0PA"} {
		require.Equal(t, KeyToken([]byte(k)), StringToken(k), "%q", k)
	}
}

func TestSnapshotOwners(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	fresh, stale := now.UnixMilli(), now.Add(-2*time.Minute).UnixMilli()
	ix := NewIndex([]Instance{
		{ID: "c", Zone: "z1", State: Joining, Heartbeat: fresh, Tokens: []uint32{300}},
		{ID: "a", Zone: "z1", State: Active, Heartbeat: fresh, Tokens: []uint32{100}},
		{ID: "b", Zone: "z2", State: Active, Heartbeat: stale, Tokens: []uint32{200}},
		{ID: "d", Zone: "z2", State: Left, Heartbeat: fresh, Tokens: []uint32{150}},
	})
	ownerIDs := func(in []Instance) []string {
		out := []string{}
		for _, x := range in {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		cfg         Config
		token       uint32
		op          Operation
		owners      []string // healthy or not
		healthy     []string // healthy for op
		notInstance string
	}{
		{"primary", Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, 150, Write, []string{"b"}, []string{"a"}, "d"},
		{"wraps past the last token", Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, 301, Write, []string{"a"}, []string{"a"}, "d"},
		{"joining serves reads", Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, 250, Read, []string{"c"}, []string{"c"}, "d"},
		{"joining takes no writes", Config{ReplicationFactor: 1, HeartbeatTimeout: time.Minute}, 250, Write, []string{"c"}, []string{"a"}, "d"},
		{"rf 2", Config{ReplicationFactor: 2, HeartbeatTimeout: time.Minute}, 150, Read, []string{"b", "c"}, []string{"c", "a"}, "d"},
		{"rf above instances", Config{ReplicationFactor: 5}, 0, Read, []string{"a", "b", "c"}, []string{"a", "b", "c"}, "d"},
		{"zones", Config{ReplicationFactor: 3, HeartbeatTimeout: time.Minute, ZoneAwarenessEnabled: true}, 250, Read, []string{"c", "b"}, []string{"c"}, "d"},
		{"rf 0 means 1", Config{}, 0, Write, []string{"a"}, []string{"a"}, "d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(ix, tc.cfg, now)
			require.Equal(t, tc.owners, ownerIDs(s.Owners(tc.token, nil)))
			require.Equal(t, tc.healthy, ownerIDs(s.HealthyOwners(tc.token, tc.op, nil)))
			for _, in := range ix.Instances() {
				require.Equal(t, slices.Contains(tc.owners, in.ID), s.Owns(in.ID, tc.token), "Owns %s", in.ID)
				require.Equal(t, slices.Contains(tc.healthy, in.ID), s.OwnsHealthy(in.ID, tc.token, tc.op), "OwnsHealthy %s", in.ID)
			}
			require.False(t, s.Owns(tc.notInstance, tc.token), "LEFT owns nothing")
			require.False(t, s.OwnsHealthy("nobody", tc.token, tc.op))
		})
	}
	empty := NewSnapshot(NewIndex(nil), Config{ReplicationFactor: 3}, now)
	require.Empty(t, empty.Owners(1, nil))
	require.False(t, empty.Owns("a", 1))
}
