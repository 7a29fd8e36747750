package distributor

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// randHAState draws a small state from a small universe, so that the same
// cluster often appears with equal ReceivedAt and different content: the
// ties merge must settle the same way everywhere.
func randHAState(rnd *rand.Rand) *HAState {
	s := &HAState{Tenants: map[string]map[string]HAReplica{}}
	for range rnd.IntN(6) {
		tenant := fmt.Sprintf("t%d", rnd.IntN(2))
		cluster := fmt.Sprintf("c%d", rnd.IntN(3))
		if s.Tenants[tenant] == nil {
			s.Tenants[tenant] = map[string]HAReplica{}
		}
		s.Tenants[tenant][cluster] = HAReplica{
			Replica:    []string{"a", "b"}[rnd.IntN(2)],
			ReceivedAt: int64(1000 + rnd.IntN(4)),
			ElectedAt:  int64(900 + rnd.IntN(2)),
		}
	}
	return s
}

// cloneHA deep-copies s.
func cloneHA(s *HAState) *HAState {
	c := &HAState{Tenants: map[string]map[string]HAReplica{}}
	for t, cs := range s.Tenants {
		c.Tenants[t] = maps.Clone(cs)
	}
	return c
}

// flatHA is s as one map, for comparisons that ignore empty tenant maps.
func flatHA(s *HAState) map[string]HAReplica {
	out := map[string]HAReplica{}
	for t, cs := range s.Tenants {
		for c, r := range cs {
			out[t+"/"+c] = r
		}
	}
	return out
}

func mustMergeHA(t testing.TB, a, b *HAState) (merged, delta *HAState) {
	t.Helper()
	m, dl, err := a.Merge(b)
	require.NoError(t, err)
	if dl == nil {
		require.Same(t, a, m, "no delta means the receiver itself")
		return m.(*HAState), nil
	}
	return m.(*HAState), dl.(*HAState)
}

// TestHAStateMergeProperties checks that Merge is a join: commutative,
// associative, idempotent, that its delta carries exactly the news, that
// it modifies neither argument, and that Compact and Supersedes agree.
func TestHAStateMergeProperties(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 5))
	before := time.UnixMilli(1002)
	for i := range 5000 {
		a, b, c := randHAState(rnd), randHAState(rnd), randHAState(rnd)
		a0, b0 := cloneHA(a), cloneHA(b)

		ab, delta := mustMergeHA(t, a, b)
		ba, _ := mustMergeHA(t, b, a)
		require.Equal(t, flatHA(ab), flatHA(ba), "commutative (case %d)", i)
		require.Equal(t, a0, a, "a not modified (case %d)", i)
		require.Equal(t, b0, b, "b not modified (case %d)", i)

		abc1, _ := mustMergeHA(t, ab, c)
		bc, _ := mustMergeHA(t, b, c)
		abc2, _ := mustMergeHA(t, a, bc)
		require.Equal(t, flatHA(abc1), flatHA(abc2), "associative (case %d)", i)

		aa, d := mustMergeHA(t, a, a)
		require.Nil(t, d, "idempotent (case %d)", i)
		require.Same(t, a, aa)
		_, d = mustMergeHA(t, ab, b)
		require.Nil(t, d, "merging again changes nothing (case %d)", i)

		if delta != nil {
			viaDelta, _ := mustMergeHA(t, a, delta)
			require.Equal(t, flatHA(ab), flatHA(viaDelta), "the delta is all the news (case %d)", i)
			for k, r := range flatHA(delta) {
				require.NotEqual(t, flatHA(a)[k], r, "the delta is only news (case %d)", i)
			}
		} else {
			require.Equal(t, flatHA(a), flatHA(ab))
		}

		ca, _ := a.Compact(before)
		cb, _ := b.Compact(before)
		left, _ := ab.Compact(before)
		right, _ := mustMergeHA(t, ca.(*HAState), cb.(*HAState))
		require.Equal(t, flatHA(left.(*HAState)), flatHA(right), "compact commutes with merge (case %d)", i)

		if b.Supersedes(c) {
			x, _ := mustMergeHA(t, a, c)
			x, _ = mustMergeHA(t, x, b)
			y, _ := mustMergeHA(t, a, b)
			require.Equal(t, flatHA(y), flatHA(x), "a superseded delta adds nothing (case %d)", i)
		}
	}
}

func TestHAStateMerge(t *testing.T) {
	elected := HAReplica{Replica: "a", ReceivedAt: 100, ElectedAt: 50}
	refreshed := HAReplica{Replica: "a", ReceivedAt: 200, ElectedAt: 50}
	failover := HAReplica{Replica: "b", ReceivedAt: 300, ElectedAt: 300}
	rival := HAReplica{Replica: "c", ReceivedAt: 300, ElectedAt: 300}
	for _, tc := range []struct {
		name       string
		have, got  HAReplica
		want       HAReplica
		wantChange bool
	}{
		{"refresh wins", elected, refreshed, refreshed, true},
		{"stale refresh loses", refreshed, elected, refreshed, false},
		{"failover wins", refreshed, failover, failover, true},
		{"stale elected does not come back", failover, refreshed, failover, false},
		{"tie of two failovers: greater replica", failover, rival, rival, true},
		{"tie the other way round", rival, failover, rival, false},
		{"same entry", elected, elected, elected, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			merged, delta := mustMergeHA(t, singleHA("t", "c", tc.have), singleHA("t", "c", tc.got))
			got, _ := merged.get("t", "c")
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantChange, delta != nil)
		})
	}
}

func TestHAStateCompact(t *testing.T) {
	s := &HAState{Tenants: map[string]map[string]HAReplica{
		"t1": {"old": {Replica: "a", ReceivedAt: 10}, "new": {Replica: "a", ReceivedAt: 30}},
		"t2": {"old": {Replica: "b", ReceivedAt: 19}},
	}}
	c, n := s.Compact(time.UnixMilli(20))
	require.Equal(t, 2, n)
	require.Equal(t, map[string]HAReplica{"t1/new": {Replica: "a", ReceivedAt: 30}}, flatHA(c.(*HAState)))
	require.NotContains(t, c.(*HAState).Tenants, "t2", "a tenant without clusters goes")
	require.Equal(t, 3, s.entries(), "the receiver is not modified")
	same, n := s.Compact(time.UnixMilli(5))
	require.Zero(t, n)
	require.Same(t, s, same)
}

func TestHACodecRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(9, 9))
	for i := range 200 {
		s := randHAState(rnd)
		b, err := HACodec{}.Encode(s)
		require.NoError(t, err)
		got, err := HACodec{}.Decode(b)
		require.NoError(t, err)
		require.Equal(t, flatHA(s), flatHA(got.(*HAState)), "case %d", i)
		again, err := HACodec{}.Encode(got)
		require.NoError(t, err)
		require.Equal(t, b, again, "equal states encode equally (case %d)", i)
	}
	_, err := HACodec{}.Encode(nil)
	require.Error(t, err)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"truncated", appendHAState(nil, singleHA("t", "c", HAReplica{Replica: "a", ReceivedAt: 1}))[:5]},
		{"no replica", appendHAState(nil, singleHA("t", "c", HAReplica{ReceivedAt: 1}))},
		{"bad tag", []byte{0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := HACodec{}.Decode(tc.in)
			require.Error(t, err)
		})
	}
}

func FuzzDecodeHAState(f *testing.F) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		f.Add(appendHAState(nil, randHAState(rnd)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeHAState(b) // may reject; must not panic or over-allocate
		if err != nil {
			return
		}
		again, err := decodeHAState(appendHAState(nil, s))
		require.NoError(t, err)
		require.Equal(t, flatHA(s), flatHA(again))
	})
}
