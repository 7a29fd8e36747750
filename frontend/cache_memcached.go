package frontend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// memcachedCache is the shared results cache of a fleet of frontends:
// keys spread over -frontend.results-cache.memcached.addresses by
// gomemcache's server selector, each call bounded by the timeout.
type memcachedCache struct {
	c           *memcache.Client
	maxItemSize int
	m           *metrics
}

func newMemcachedCache(cfg MemcachedConfig, m *metrics) (*memcachedCache, error) {
	var sl memcache.ServerList
	if err := sl.SetServers(cfg.addresses()...); err != nil {
		return nil, fmt.Errorf("resolve -frontend.results-cache.memcached.addresses: %w", err)
	}
	c := memcache.NewFromSelector(&sl)
	c.Timeout = cfg.Timeout
	c.MaxIdleConns = cfg.MaxIdleConns
	return &memcachedCache{c: c, maxItemSize: cfg.MaxItemSize, m: m}, nil
}

func (c *memcachedCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	it, err := c.c.Get(key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("memcached get: %w", err)
	}
	return it.Value, true, nil
}

// Set skips a value over the item size: memcached would refuse it.
func (c *memcachedCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(key)+len(value) > c.maxItemSize {
		c.m.cacheTooLarge.WithLabelValues(BackendMemcached).Inc()
		return nil
	}
	if err := c.c.Set(&memcache.Item{Key: key, Value: value, Expiration: memcachedExpiration(ttl)}); err != nil {
		return fmt.Errorf("memcached set: %w", err)
	}
	return nil
}

// memcachedExpiration is memcached's exptime: seconds up to 30 days, a
// Unix time beyond (memcached reads larger numbers as one).
func memcachedExpiration(ttl time.Duration) int32 {
	const maxRelative = 30 * 24 * time.Hour
	secs := int32(max(1, ttl/time.Second))
	if ttl > maxRelative {
		return int32(time.Now().Add(ttl).Unix())
	}
	return secs
}

func (c *memcachedCache) Close() error { return c.c.Close() }
