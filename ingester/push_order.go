package ingester

import (
	"math/bits"
	"slices"
	"sync"
)

// Pushes of one tenant that touch a common series are ordered: the later
// one appends only after the earlier one has committed. Prometheus' head
// (v0.315.1) checks a sample's order when it is appended but stores it, and
// writes its WAL record, when its appender commits; it also makes a new
// series visible to every appender before its creator logs the series
// record. Two pushes on one series that commit in the other order than
// they appended therefore leave, in the WAL, samples of a series not yet
// recorded (dropped on replay), or an older sample behind a newer one
// (dropped at commit without an out-of-order window, and on replay with
// one): acknowledged samples lost.
//
// pushOrder keeps the tenant's pushes between their lookup of series and
// their commit, each with the label hashes of the series it touches. A
// push entering waits for every push already in that overlaps it, so a
// push waits only for earlier ones (no cycle, no deadlock), and pushes on
// disjoint series (several senders, each its own series) never wait. A
// push that enters alone (one sender) does no more than take the mutex
// twice; one behind others compares hashes outside the mutex. Hash
// collisions make a push wait needlessly, never too little.
type pushOrder struct {
	mu     sync.Mutex
	active []*pushTicket
}

// pushTicket is one push in pushOrder. It lives in the push's pushState.
type pushTicket struct {
	hashes []uint64 // label hashes of the series the push touches
	// filter is a Bloom filter of hashes (two bits per hash, 64 bits per
	// hash), built when the push enters behind others.
	filter []uint64
	// earlier is scratch: the pushes that were in when this one entered.
	earlier []*pushTicket

	// Guarded by pushOrder.mu: in is true from enter to leave; done is
	// made by the first push that waits for this one and closed on leave.
	in   bool
	done chan struct{}
	// readers are the pushes that entered behind this one and still read
	// its hashes; leave waits for them, since the push's state (and its
	// hashes) is reused once it returns.
	readers sync.WaitGroup
}

// enter adds t and returns the channels of the earlier pushes t must wait
// for, appended to waits[:0].
func (o *pushOrder) enter(t *pushTicket, waits []chan struct{}) []chan struct{} {
	waits = waits[:0]
	o.mu.Lock()
	earlier := append(t.earlier[:0], o.active...)
	for _, q := range earlier {
		q.readers.Add(1)
	}
	o.active = append(o.active, t)
	t.in = true
	o.mu.Unlock()
	if len(earlier) == 0 {
		return waits
	}

	overlapping := earlier[:0]
	if len(t.hashes) > 0 {
		t.buildFilter()
	}
	for _, q := range earlier {
		if len(t.hashes) > 0 && t.overlaps(q.hashes) {
			overlapping = append(overlapping, q)
			continue
		}
		q.readers.Done()
	}
	if len(overlapping) > 0 {
		o.mu.Lock()
		for _, q := range overlapping {
			if !q.in {
				continue // committed meanwhile
			}
			if q.done == nil {
				q.done = make(chan struct{})
			}
			waits = append(waits, q.done)
		}
		o.mu.Unlock()
		for _, q := range overlapping {
			q.readers.Done()
		}
	}
	clear(earlier) // do not pin other pushes' state
	t.earlier = earlier[:0]
	return waits
}

// leave removes t (after its commit), wakes the pushes waiting for it and
// returns once no push reads t's hashes any more.
func (o *pushOrder) leave(t *pushTicket) {
	o.mu.Lock()
	if k := slices.Index(o.active, t); k >= 0 {
		last := len(o.active) - 1
		o.active[k] = o.active[last]
		o.active[last] = nil
		o.active = o.active[:last]
	}
	t.in = false
	if t.done != nil {
		close(t.done)
		t.done = nil
	}
	o.mu.Unlock()
	t.readers.Wait()
}

// filterBits returns the two filter bits of h in a filter of mask+1 bits.
func filterBits(h uint64, mask uint32) (uint32, uint32) {
	return uint32(h) & mask, uint32(h>>32) & mask
}

func (t *pushTicket) buildFilter() {
	words := 1 << bits.Len(uint(len(t.hashes)-1)) // 64 bits per hash, a power of two
	t.filter = slices.Grow(t.filter[:0], words)[:words]
	clear(t.filter)
	mask := uint32(words*64 - 1)
	for _, h := range t.hashes {
		a, b := filterBits(h, mask)
		t.filter[a/64] |= 1 << (a % 64)
		t.filter[b/64] |= 1 << (b % 64)
	}
}

// overlaps reports whether t touches one of the series hashed in others.
// The filter answers most probes (about one in a thousand is a false
// hit); a hit is confirmed against t's hashes.
func (t *pushTicket) overlaps(others []uint64) bool {
	mask := uint32(len(t.filter)*64 - 1)
	for _, h := range others {
		a, b := filterBits(h, mask)
		if t.filter[a/64]&(1<<(a%64)) == 0 || t.filter[b/64]&(1<<(b%64)) == 0 {
			continue
		}
		if slices.Contains(t.hashes, h) {
			return true
		}
	}
	return false
}
