package ingester

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func hashes(rnd *rand.Rand, n int) []uint64 {
	out := make([]uint64, n)
	for k := range out {
		out[k] = rnd.Uint64()
	}
	return out
}

// TestPushOrder: a push waits for exactly the earlier pushes in flight that
// share a series with it, and is woken when they leave.
func TestPushOrder(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var o pushOrder
	a := &pushTicket{hashes: hashes(rnd, 2000)}
	b := &pushTicket{hashes: hashes(rnd, 2000)}
	require.Empty(t, o.enter(a, nil), "alone")
	require.Empty(t, o.enter(b, nil), "disjoint from a")

	c := &pushTicket{hashes: append(hashes(rnd, 1999), b.hashes[1234])}
	waits := o.enter(c, nil)
	require.Len(t, waits, 1, "shares one series with b")
	d := &pushTicket{hashes: []uint64{a.hashes[0], c.hashes[0]}}
	require.Len(t, o.enter(d, nil), 2, "shares a series with a and with c")

	o.leave(a)
	select {
	case <-waits[0]:
		t.Fatal("c woken by a, which it does not wait for")
	default:
	}
	o.leave(b)
	<-waits[0] // b left
	o.leave(c)
	o.leave(d)
	require.Empty(t, o.active)
	require.Empty(t, o.enter(&pushTicket{hashes: b.hashes}, nil), "b's series are free again")
}

// BenchmarkPushOrder is what ordering adds to a push of 2,000 series: alone
// (one sender), and behind 1 or 8 pushes of 2,000 other series each.
func BenchmarkPushOrder(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, behind := range []int{0, 1, 8} {
		b.Run(fmt.Sprint("behind-", behind), func(b *testing.B) {
			var o pushOrder
			for range behind {
				o.enter(&pushTicket{hashes: hashes(rnd, benchSeries)}, nil)
			}
			t := &pushTicket{hashes: hashes(rnd, benchSeries)}
			var waits []chan struct{}
			b.ReportAllocs()
			for b.Loop() {
				waits = o.enter(t, waits)
				if len(waits) > 0 {
					b.Fatal("disjoint pushes waited")
				}
				o.leave(t)
			}
		})
	}
}
