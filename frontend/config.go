package frontend

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the query-frontend's configuration.
type Config struct {
	// DownstreamURL is the queriers' base URL for -target=query-frontend;
	// unused in process (-target=all).
	DownstreamURL string `yaml:"downstream_url"`
	// SplitInterval splits range queries into legs of at most this long,
	// on its boundaries; 0 does not split.
	SplitInterval time.Duration `yaml:"split_queries_by_interval"`
	// DownstreamTimeout bounds one leg's call to the queriers.
	DownstreamTimeout time.Duration `yaml:"downstream_timeout"`
	ResultsCache      CacheConfig   `yaml:"results_cache"`
}

// CacheConfig chooses and sizes the results cache.
type CacheConfig struct {
	// Backend is "embedded", "memcached" or "none".
	Backend  string          `yaml:"backend"`
	MaxBytes int64           `yaml:"max_size_bytes"`
	Memcache MemcachedConfig `yaml:"memcached"`
}

// MemcachedConfig is the memcached backend's client.
type MemcachedConfig struct {
	Addresses    string        `yaml:"addresses"`
	Timeout      time.Duration `yaml:"timeout"`
	MaxItemSize  int           `yaml:"max_item_size"`
	MaxIdleConns int           `yaml:"max_idle_connections"`
}

// Backends of the results cache.
const (
	BackendEmbedded  = "embedded"
	BackendMemcached = "memcached"
	BackendNone      = "none"
)

// RegisterFlags registers the query-frontend's flags.
//
// 24h legs: Mimir's and Cortex's default, and a day is what a dashboard's
// range is usually a multiple of; each leg is one results-cache entry, so
// a 7-day panel refreshed re-evaluates only the newest day's missing part.
// 256 MiB embedded: about a thousand dashboards' 7-day panels of a few
// hundred series at a 1 min step.
// 1 MiB memcached items: memcached's default -I; a larger leg is answered
// but not stored.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DownstreamURL, "frontend.downstream-url", "", "Base URL of the queriers (or a load balancer in front of them) the query-frontend sends legs and pass-through requests to, e.g. http://querier:8080; required with -target=query-frontend, unused with -target=all (the querier is in the process).")
	fs.DurationVar(&c.SplitInterval, "frontend.split-queries-by-interval", 24*time.Hour, "Split range queries into legs at multiples of this interval (UTC), evaluated in parallel and cached one leg per entry; 0 does not split.")
	fs.DurationVar(&c.DownstreamTimeout, "frontend.downstream-timeout", 2*time.Minute, "Longest one leg or pass-through request to the queriers may take.")
	fs.StringVar(&c.ResultsCache.Backend, "frontend.results-cache.backend", BackendEmbedded, "Results cache of range-query legs: embedded (in this process, LRU bounded by -frontend.results-cache.max-size-bytes), memcached (shared by a fleet of frontends; -frontend.results-cache.memcached.addresses) or none.")
	fs.Int64Var(&c.ResultsCache.MaxBytes, "frontend.results-cache.max-size-bytes", 256<<20, "Memory the embedded results cache may hold; the least recently used entries go first.")
	fs.StringVar(&c.ResultsCache.Memcache.Addresses, "frontend.results-cache.memcached.addresses", "", "Comma-separated host:port of the memcached servers of the results cache; keys are spread over them.")
	fs.DurationVar(&c.ResultsCache.Memcache.Timeout, "frontend.results-cache.memcached.timeout", 200*time.Millisecond, "Deadline of one memcached read or write; a slow cache counts as a miss.")
	fs.IntVar(&c.ResultsCache.Memcache.MaxItemSize, "frontend.results-cache.memcached.max-item-size", 1<<20, "Largest entry written to memcached, in bytes (memcached's -I); larger legs are not cached.")
	fs.IntVar(&c.ResultsCache.Memcache.MaxIdleConns, "frontend.results-cache.memcached.max-idle-connections", 16, "Idle connections kept per memcached server.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.DownstreamURL != "" {
		u, err := url.Parse(c.DownstreamURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-frontend.downstream-url=%q must be an http:// or https:// URL with a host", c.DownstreamURL)
		}
	}
	if c.SplitInterval < 0 {
		return fmt.Errorf("-frontend.split-queries-by-interval must not be negative, got %s", c.SplitInterval)
	}
	if c.DownstreamTimeout <= 0 {
		return fmt.Errorf("-frontend.downstream-timeout must be positive, got %s", c.DownstreamTimeout)
	}
	switch c.ResultsCache.Backend {
	case BackendEmbedded:
		if c.ResultsCache.MaxBytes <= 0 {
			return fmt.Errorf("-frontend.results-cache.max-size-bytes must be positive, got %d", c.ResultsCache.MaxBytes)
		}
	case BackendMemcached:
		if len(c.ResultsCache.Memcache.addresses()) == 0 {
			return errors.New("-frontend.results-cache.memcached.addresses must name at least one server with -frontend.results-cache.backend=memcached")
		}
		if c.ResultsCache.Memcache.Timeout <= 0 {
			return fmt.Errorf("-frontend.results-cache.memcached.timeout must be positive, got %s", c.ResultsCache.Memcache.Timeout)
		}
		if c.ResultsCache.Memcache.MaxItemSize <= 0 {
			return fmt.Errorf("-frontend.results-cache.memcached.max-item-size must be positive, got %d", c.ResultsCache.Memcache.MaxItemSize)
		}
	case BackendNone:
	default:
		return fmt.Errorf("-frontend.results-cache.backend=%q is unknown; want embedded, memcached or none", c.ResultsCache.Backend)
	}
	return nil
}

func (c MemcachedConfig) addresses() []string {
	var out []string
	for _, a := range strings.Split(c.Addresses, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
