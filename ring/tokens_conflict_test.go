package ring

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenConflicts(t *testing.T) {
	d := &Desc{Instances: map[string]Instance{
		"a": {ID: "a", State: Active, Tokens: []uint32{1, 5, 9}},
		"b": {ID: "b", State: Joining, Tokens: []uint32{5, 7, 9, 11}},
		"c": {ID: "c", State: Left, Tokens: []uint32{7}},
		"d": {ID: "d", State: Active, Tokens: []uint32{11, 12}},
	}}
	for _, tc := range []struct {
		self string
		want []uint32
	}{
		{"a", nil},            // the lowest id keeps every token
		{"b", []uint32{5, 9}}, // a holds them; c is a tombstone
		{"d", []uint32{11}},   // b holds it
		{"missing", nil},      // not in the ring
	} {
		require.Equal(t, tc.want, d.tokenConflicts(tc.self), tc.self)
	}

	rnd := rand.New(rand.NewPCG(1, 2))
	require.Equal(t, 2, d.resolveTokenConflicts("b", rnd))
	require.Equal(t, 1, d.resolveTokenConflicts("d", rnd))
	require.Zero(t, d.resolveTokenConflicts("b", rnd), "settled")
	owner := map[uint32]string{}
	for id, in := range d.Instances {
		if in.State == Left {
			continue
		}
		require.IsIncreasing(t, in.Tokens, id)
		for _, tk := range in.Tokens {
			require.Empty(t, owner[tk], "token %d held by %s and %s", tk, owner[tk], id)
			owner[tk] = id
		}
	}
	require.Len(t, d.Instances["b"].Tokens, 4, "b keeps its token count")
	require.Contains(t, d.Instances["b"].Tokens, uint32(7), "a tombstone's token is free")
	require.Equal(t, []uint32{1, 5, 9}, d.Instances["a"].Tokens, "the winner is untouched")
}

// TestTokenConflictsSettleOverMerge: two instances join at once with the
// same token on two members; after both merge, the loser gives it up and
// every member agrees.
func TestTokenConflictsSettleOverMerge(t *testing.T) {
	onA := &Desc{Instances: map[string]Instance{"ing-a": {ID: "ing-a", State: Joining, Tokens: []uint32{100, 200}, Heartbeat: 10}}}
	onB := &Desc{Instances: map[string]Instance{"ing-b": {ID: "ing-b", State: Joining, Tokens: []uint32{200, 300}, Heartbeat: 10}}}
	a, _ := mustMerge(t, onA, onB)
	b, _ := mustMerge(t, onB, onA)
	require.Equal(t, []uint32{200}, b.tokenConflicts("ing-b"))
	require.Empty(t, a.tokenConflicts("ing-a"))

	// ing-b's lifecycler settles it on its member, through the store.
	next := b.Clone()
	next.resolveTokenConflicts("ing-b", rand.New(rand.NewPCG(3, 4)))
	delta := changes(b, next, 11)
	a, _ = mustMerge(t, a, delta)
	b, _ = mustMerge(t, b, delta)
	require.Equal(t, a.Instances, b.Instances)
	require.Empty(t, a.tokenConflicts("ing-b"))
	require.NotContains(t, a.Instances["ing-b"].Tokens, uint32(200))
}
