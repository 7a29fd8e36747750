package gossip

import "time"

// Mergeable is a value that every member holds a copy of and that gossip
// keeps in agreement: a state-based CRDT. Values handed to or returned by
// the KV are immutable: nobody modifies them after, so readers share them
// without copying.
//
// Implementations need not be goroutine-safe beyond that: the KV calls Merge
// and Compact under its own lock.
type Mergeable interface {
	// Merge returns the join of the receiver and other, and delta: the part
	// of other that was news to the receiver, or nil when merged equals the
	// receiver (then merged is the receiver itself). Neither the receiver nor
	// other is modified; merged and delta may share memory with both.
	//
	// merged must be commutative, associative and idempotent in its
	// arguments, so that members who heard the same updates in any order,
	// any number of times, hold equal values; and merging delta into the
	// receiver must give merged. other has the receiver's type, or Merge
	// returns an error.
	Merge(other Mergeable) (merged, delta Mergeable, err error)

	// Compact returns the value without the entries last written before
	// before (expired tombstones, and members silent for that long), and how
	// many it dropped; the receiver itself when none. The KV compacts its
	// own values periodically and every incoming value before merging it,
	// so a stale peer cannot bring back what everyone else already dropped.
	// Compact must commute with Merge.
	Compact(before time.Time) (compacted Mergeable, removed int)
}

// Superseder is implemented by values whose deltas can make older queued
// deltas redundant (a newer heartbeat of one instance replaces an older
// one): a queued broadcast of older is dropped when a delta that
// supersedes it is queued. Optional.
type Superseder interface {
	// Supersedes reports whether merging the receiver makes merging older
	// useless, for every possible current value.
	Supersedes(older Mergeable) bool
}

// Codec turns one value type into bytes and back. Every process of a
// cluster must register the same codec for a key.
type Codec interface {
	// ID names the encoding on the wire; a message whose codec ID differs
	// from the registered one is dropped (a mixed-version cluster).
	ID() string
	// Encode returns v's bytes; v has the codec's value type.
	Encode(v Mergeable) ([]byte, error)
	// Decode parses b, which it must not keep (it is reused). It returns an
	// error for malformed input and must not panic or over-allocate.
	Decode(b []byte) (Mergeable, error)
}
