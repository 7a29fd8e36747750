package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestModelLearnsAndDriftDegradesIt: trained on its generated data, the
// model classifies held-out data about as well as possible (the best
// classifier is right ~92% of the time); drift makes it worse, the more the
// more drift, down to a coin flip; below the alert's 80% well before 0.8.
func TestModelLearnsAndDriftDegradesIt(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		m, heldOutAcc := trainModel(seed, 2000)
		require.Greater(t, heldOutAcc, 0.88, "seed %d: held-out accuracy", seed)

		test := generate(rand.New(rand.NewPCG(seed, 99)), 4000)
		var acc []float64
		for _, drift := range []float64{0, 0.2, 0.4, 0.6, 0.8, 1} {
			acc = append(acc, m.accuracy(test, drift))
		}
		require.Greater(t, acc[0], 0.88, "seed %d: clean accuracy", seed)
		require.Less(t, acc[4], 0.75, "seed %d: accuracy at drift 0.8", seed)
		require.InDelta(t, 0.5, acc[5], 0.05, "seed %d: accuracy at drift 1 is a coin flip", seed)
		require.True(t, slices.IsSortedFunc(acc, func(a, b float64) int {
			switch {
			case a > b:
				return -1
			case a < b:
				return 1
			}
			return 0
		}), "seed %d: accuracy falls with drift: %v", seed, acc)
	}
}

// TestTrainingIsDeterministic: the same seed trains the same model.
func TestTrainingIsDeterministic(t *testing.T) {
	a, accA := trainModel(7, 500)
	b, accB := trainModel(7, 500)
	require.Equal(t, a, b)
	require.Equal(t, accA, accB)
	c, _ := trainModel(8, 500)
	require.NotEqual(t, a, c)
}

// TestDriftRaisesLatency: the simulated inference times at drift 0.8 have a
// p99 above the alert's 1s, at drift 0 far below it.
func TestDriftRaisesLatency(t *testing.T) {
	p99 := func(drift float64) time.Duration {
		rng := rand.New(rand.NewPCG(1, 1))
		d := make([]time.Duration, 20000)
		for i := range d {
			d[i] = inferenceDelay(rng, drift)
		}
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	require.Less(t, p99(0), 50*time.Millisecond)
	require.Greater(t, p99(0.8), time.Second)
}

func TestWindow(t *testing.T) {
	w := newWindow(3)
	_, ok := w.ratio()
	require.False(t, ok, "empty window")
	for _, tc := range []struct {
		add  bool
		want float64
	}{
		{true, 1},
		{false, 0.5},
		{false, 1.0 / 3},
		{false, 0},      // the first true fell out
		{true, 1.0 / 3}, // and one came in
		{true, 2.0 / 3},
		{true, 1},
	} {
		w.add(tc.add)
		got, ok := w.ratio()
		require.True(t, ok)
		require.InDelta(t, tc.want, got, 1e-9)
	}
}
