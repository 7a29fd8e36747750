package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// randDesc draws a small ring from a small universe, so that the same
// instance often appears with equal versions and different content: the
// ties merge must settle the same way everywhere.
func randDesc(rnd *rand.Rand) *Desc {
	d := NewDesc()
	for range rnd.IntN(6) {
		id := fmt.Sprintf("ing-%d", rnd.IntN(5))
		in := Instance{
			ID:           id,
			Addr:         []string{"10.0.0.1:9095", "10.0.0.2:9095"}[rnd.IntN(2)],
			Zone:         []string{"", "z1"}[rnd.IntN(2)],
			State:        State(1 + rnd.IntN(4)),
			Heartbeat:    int64(1000 + rnd.IntN(4)),
			RegisteredAt: int64(rnd.IntN(2)),
		}
		for t := range uint32(6) {
			if rnd.IntN(2) == 0 {
				in.Tokens = append(in.Tokens, t*10)
			}
		}
		d.Instances[id] = in
	}
	return d
}

func mustMerge(t testing.TB, a, b *Desc) (merged, delta *Desc) {
	t.Helper()
	m, dl, err := a.Merge(b)
	require.NoError(t, err)
	if dl == nil {
		require.Same(t, a, m, "no delta means the receiver itself")
		return m.(*Desc), nil
	}
	return m.(*Desc), dl.(*Desc)
}

// TestMergeProperties checks that Merge is a join: commutative, associative,
// idempotent, that its delta carries exactly the news, that it modifies
// neither argument, and that Compact and Supersedes agree with it.
func TestMergeProperties(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	before := time.UnixMilli(1002)
	for i := range 5000 {
		a, b, c := randDesc(rnd), randDesc(rnd), randDesc(rnd)
		a0, b0 := a.Clone(), b.Clone()

		ab, delta := mustMerge(t, a, b)
		ba, _ := mustMerge(t, b, a)
		require.Equal(t, ab.Instances, ba.Instances, "commutative (case %d)", i)
		require.Equal(t, a0, a, "a not modified (case %d)", i)
		require.Equal(t, b0, b, "b not modified (case %d)", i)

		abc1, _ := mustMerge(t, ab, c)
		bc, _ := mustMerge(t, b, c)
		abc2, _ := mustMerge(t, a, bc)
		require.Equal(t, abc1.Instances, abc2.Instances, "associative (case %d)", i)

		aa, d := mustMerge(t, a, a)
		require.Nil(t, d, "idempotent (case %d)", i)
		require.Same(t, a, aa)
		_, d = mustMerge(t, ab, b)
		require.Nil(t, d, "merging again changes nothing (case %d)", i)

		if delta != nil {
			viaDelta, _ := mustMerge(t, a, delta)
			require.Equal(t, ab.Instances, viaDelta.Instances, "the delta is all the news (case %d)", i)
			for id := range delta.Instances {
				require.NotEqual(t, a.Instances[id], ab.Instances[id], "the delta is only news (case %d)", i)
			}
		} else {
			require.Equal(t, a.Instances, ab.Instances)
		}

		ca, _ := a.Compact(before)
		cb, _ := b.Compact(before)
		left, _ := ab.Compact(before)
		right, _ := mustMerge(t, ca.(*Desc), cb.(*Desc))
		require.Equal(t, left.(*Desc).Instances, right.Instances, "compact commutes with merge (case %d)", i)

		if b.Supersedes(c) {
			x, _ := mustMerge(t, a, c)
			x, _ = mustMerge(t, x, b)
			y, _ := mustMerge(t, a, b)
			require.Equal(t, y.Instances, x.Instances, "a superseded delta adds nothing (case %d)", i)
		}
	}
}

func TestMergeTombstones(t *testing.T) {
	active := Instance{ID: "a", Addr: "a:9095", State: Active, Tokens: []uint32{1, 2}, Heartbeat: 100}
	left := Instance{ID: "a", Addr: "a:9095", State: Left, Tokens: []uint32{1, 2}, Heartbeat: 101}
	forgotten := Instance{ID: "a", Addr: "a:9095", State: Left, Heartbeat: 100}
	rejoined := Instance{ID: "a", Addr: "a:9096", State: Joining, Tokens: []uint32{3}, Heartbeat: 102}
	for _, tc := range []struct {
		name       string
		have, got  Instance
		want       Instance
		wantChange bool
	}{
		{"newer LEFT replaces ACTIVE", active, left, left, true},
		{"stale ACTIVE does not resurrect LEFT", left, active, left, false},
		{"forget tombstone wins a tie", active, forgotten, forgotten, true},
		{"tie: ACTIVE loses to the tombstone", forgotten, active, forgotten, false},
		{"re-registering after LEFT wins", left, rejoined, rejoined, true},
		{"older heartbeat loses", rejoined, active, rejoined, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := &Desc{Instances: map[string]Instance{"a": tc.have}}
			got := &Desc{Instances: map[string]Instance{"a": tc.got}}
			merged, delta := mustMerge(t, have, got)
			require.Equal(t, tc.want, merged.Instances["a"])
			require.Equal(t, tc.wantChange, delta != nil)
		})
	}
}

func TestCompact(t *testing.T) {
	d := &Desc{Instances: map[string]Instance{
		"old-left":   {ID: "old-left", State: Left, Heartbeat: 10},
		"new-left":   {ID: "new-left", State: Left, Heartbeat: 30},
		"old-active": {ID: "old-active", State: Active, Heartbeat: 10},
		"new-active": {ID: "new-active", State: Active, Heartbeat: 20},
	}}
	c, n := d.Compact(time.UnixMilli(20))
	require.Equal(t, 2, n)
	require.ElementsMatch(t, []string{"new-left", "new-active"}, keys(c.(*Desc)))
	require.Len(t, d.Instances, 4, "the receiver is not modified")

	same, n := d.Compact(time.UnixMilli(5))
	require.Zero(t, n)
	require.Same(t, d, same)
}

func keys(d *Desc) []string {
	var out []string
	for id := range d.Instances {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func TestMergeRejectsOtherTypes(t *testing.T) {
	_, _, err := NewDesc().Merge(nil)
	require.ErrorContains(t, err, "want *ring.Desc")
}

// bigDesc is a ring of n instances with 128 random tokens each.
func bigDesc(n int) *Desc {
	d := NewDesc()
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		id := fmt.Sprintf("ingester-%03d", i)
		tokens := make([]uint32, 128)
		for j := range tokens {
			tokens[j] = rnd.Uint32()
		}
		slices.Sort(tokens)
		d.Instances[id] = Instance{
			ID: id, Addr: fmt.Sprintf("10.0.%d.%d:9095", i/250, i%250), Zone: fmt.Sprintf("zone-%d", i%3),
			State: Active, Tokens: slices.Compact(tokens), Heartbeat: 1_700_000_000_000, RegisteredAt: 1_600_000_000_000,
		}
	}
	return d
}

func BenchmarkMerge(b *testing.B) {
	base := bigDesc(100)
	full := base.Clone()
	in := full.Instances["ingester-042"]
	in.Heartbeat++
	full.Instances["ingester-042"] = in
	one := &Desc{Instances: map[string]Instance{"ingester-042": in}}
	for _, bc := range []struct {
		name  string
		other *Desc
	}{
		{"push-pull 100 instances, 1 changed", full},
		{"broadcast of 1 changed instance", one},
		{"push-pull 100 instances, none changed", base.Clone()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := base.Merge(bc.other); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
