package storegateway

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// lru is a cache bounded by the bytes of its entries, least recently used
// evicted first. It is goroutine-safe. Values are shared with every caller
// that gets them: they must not be modified.
type lru[K comparable, V any] struct {
	max int64
	m   cacheMetrics

	mu    sync.Mutex
	size  int64
	items map[K]*lruEntry[K, V]
	head  lruEntry[K, V] // sentinel: head.next is the most recent
}

type lruEntry[K comparable, V any] struct {
	key        K
	val        V
	size       int64
	prev, next *lruEntry[K, V]
}

type cacheMetrics struct {
	hits, misses, evictions prometheus.Counter
	bytes, items            prometheus.Gauge
}

// lruEntryOverhead approximates an entry's own memory (list links, map
// slot, key and value headers) on top of the size it is added with.
const lruEntryOverhead = 96

func newLRU[K comparable, V any](maxBytes int64, m cacheMetrics) *lru[K, V] {
	c := &lru[K, V]{max: maxBytes, m: m, items: map[K]*lruEntry[K, V]{}}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	e, ok := c.items[k]
	if ok {
		c.unlink(e)
		c.pushFront(e)
	}
	c.mu.Unlock()
	if !ok {
		c.m.misses.Inc()
		var zero V
		return zero, false
	}
	c.m.hits.Inc()
	return e.val, true
}

// add caches v under k, counting size bytes; a value larger than the whole
// cache is not cached.
func (c *lru[K, V]) add(k K, v V, size int64) {
	size += lruEntryOverhead
	if size > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.size += size - e.size
		e.val, e.size = v, size
		c.unlink(e)
		c.pushFront(e)
	} else {
		e := &lruEntry[K, V]{key: k, val: v, size: size}
		c.items[k] = e
		c.pushFront(e)
		c.size += size
	}
	evicted := 0
	for c.size > c.max {
		e := c.head.prev
		c.unlink(e)
		delete(c.items, e.key)
		c.size -= e.size
		evicted++
	}
	c.m.evictions.Add(float64(evicted))
	c.m.bytes.Set(float64(c.size))
	c.m.items.Set(float64(len(c.items)))
}

func (c *lru[K, V]) unlink(e *lruEntry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *lru[K, V]) pushFront(e *lruEntry[K, V]) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}
