package frontend

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// embeddedCache is an LRU of values bounded by their bytes, in this
// process: the default, nothing to run beside the frontend. Entries
// expire after their TTL (checked on Get).
type embeddedCache struct {
	maxBytes int64
	now      func() time.Time
	m        *metrics

	mu    sync.Mutex
	size  int64
	lru   *list.List // front: most recently used; of *embeddedEntry
	items map[string]*list.Element
}

type embeddedEntry struct {
	key     string
	value   []byte
	expires time.Time
}

// entryOverhead approximates an entry's bookkeeping: the map slot, the
// list element and the entry.
const entryOverhead = 150

func newEmbeddedCache(maxBytes int64, now func() time.Time, m *metrics) *embeddedCache {
	return &embeddedCache{maxBytes: maxBytes, now: now, m: m, lru: list.New(), items: map[string]*list.Element{}}
}

func entrySize(key string, value []byte) int64 {
	return int64(len(key) + len(value) + entryOverhead)
}

// Get returns a copy of the value, so that the caller may keep it.
func (c *embeddedCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*embeddedEntry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false, nil
	}
	c.lru.MoveToFront(el)
	return append([]byte(nil), e.value...), true, nil
}

// Set stores a copy of value; a value larger than a quarter of the cache
// is not stored (it would evict most of the others).
func (c *embeddedCache) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	sz := entrySize(key, value)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if sz > c.maxBytes/4 {
		c.m.cacheTooLarge.WithLabelValues(BackendEmbedded).Inc()
		return nil
	}
	for c.size+sz > c.maxBytes && c.lru.Len() > 0 {
		c.remove(c.lru.Back())
		c.m.cacheEvictions.Inc()
	}
	e := &embeddedEntry{key: key, value: append([]byte(nil), value...), expires: c.now().Add(ttl)}
	c.items[key] = c.lru.PushFront(e)
	c.size += sz
	c.m.cacheSize.Set(float64(c.size))
	c.m.cacheItems.Set(float64(len(c.items)))
	return nil
}

func (c *embeddedCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*embeddedEntry)
	delete(c.items, e.key)
	c.size -= entrySize(e.key, e.value)
	c.m.cacheSize.Set(float64(c.size))
	c.m.cacheItems.Set(float64(len(c.items)))
}
