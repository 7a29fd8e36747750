package ring

import (
	"context"
	"sync"
	"sync/atomic"
)

// Store holds the ring state. In one process it is memory; in a cluster it
// is a memberlist-gossiped CRDT. Implementations are goroutine-safe.
type Store interface {
	// Get returns the current state. The caller must not modify it; a new
	// state is always a new *Desc, so pointer equality means "unchanged".
	Get() *Desc
	// Update calls f with a private copy of the current state and publishes
	// the copy when f returns true.
	Update(ctx context.Context, f func(*Desc) bool) error
}

// MemStore is a Store for one process. Get is a lock-free load: it sits on
// the push path, once per series.
type MemStore struct {
	mu   sync.Mutex // serialises Update
	desc atomic.Pointer[Desc]
}

// NewMemStore returns an empty in-memory ring store.
func NewMemStore() *MemStore {
	s := &MemStore{}
	s.desc.Store(NewDesc())
	return s
}

// Get implements Store.
func (s *MemStore) Get() *Desc { return s.desc.Load() }

// Update implements Store.
func (s *MemStore) Update(_ context.Context, f func(*Desc) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.desc.Load().Clone()
	if f(c) {
		s.desc.Store(c)
	}
	return nil
}
