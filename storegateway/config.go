package storegateway

import (
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/strata-metrics/strata/ring"
)

// Config is a store-gateway's configuration.
type Config struct {
	DataDir               string        `yaml:"data_dir"`
	ReplicationFactor     int           `yaml:"replication_factor"`
	SyncInterval          time.Duration `yaml:"sync_interval"`
	ChunksCacheMaxBytes   int64         `yaml:"chunks_cache_max_bytes"`
	PostingsCacheMaxBytes int64         `yaml:"postings_cache_max_bytes"`
	SeriesCacheMaxBytes   int64         `yaml:"series_cache_max_bytes"`
	IdleTimeout           time.Duration `yaml:"lazy_load_idle_timeout"`
	Concurrency           int           `yaml:"concurrency"`
}

// RegisterFlags registers the store-gateway's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "store-gateway.data-dir", "", "Directory for the index-headers of the blocks this store-gateway loaded (<tenant>/<block>/index-header); default: <-data.dir>/store-gateway.")
	fs.IntVar(&c.ReplicationFactor, "store-gateway.replication-factor", 3, "Store-gateways that own each block (distinct zones with -ring.zone-awareness-enabled); a query reads each block from one of them and tries the next when it fails. With -target=all and this flag not given it is 1.")
	fs.DurationVar(&c.SyncInterval, "store-gateway.sync-interval", 5*time.Minute, "How often a store-gateway works out which blocks it owns, keeping their index-headers and deleting the others.")
	fs.Int64Var(&c.ChunksCacheMaxBytes, "store-gateway.chunks-cache-max-bytes", 256<<20, "Memory for chunks read from the bucket, least recently used evicted first; 0 disables the cache.")
	fs.Int64Var(&c.PostingsCacheMaxBytes, "store-gateway.postings-cache-max-bytes", 64<<20, "Memory for the series lists of recently queried matcher sets per block; 0 disables the cache.")
	fs.Int64Var(&c.SeriesCacheMaxBytes, "store-gateway.series-cache-max-bytes", 64<<20, "Memory for series entries (labels and chunk references) read from blocks' indexes, least recently used evicted first; 0 disables the cache.")
	fs.DurationVar(&c.IdleTimeout, "store-gateway.lazy-load-idle-timeout", time.Hour, "A block's index-header not queried for this long is closed (unmapped); its local file stays while the block is owned, so the next query reopens it without reading the bucket. 0 never closes.")
	fs.IntVar(&c.Concurrency, "store-gateway.concurrency", 16, "Blocks a store-gateway reads at once, over all queries; more wait.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ReplicationFactor < 1:
		return fmt.Errorf("-store-gateway.replication-factor must be at least 1, got %d", c.ReplicationFactor)
	case c.SyncInterval <= 0:
		return fmt.Errorf("-store-gateway.sync-interval must be positive, got %s", c.SyncInterval)
	case c.ChunksCacheMaxBytes < 0:
		return fmt.Errorf("-store-gateway.chunks-cache-max-bytes must not be negative, got %d", c.ChunksCacheMaxBytes)
	case c.PostingsCacheMaxBytes < 0:
		return fmt.Errorf("-store-gateway.postings-cache-max-bytes must not be negative, got %d", c.PostingsCacheMaxBytes)
	case c.SeriesCacheMaxBytes < 0:
		return fmt.Errorf("-store-gateway.series-cache-max-bytes must not be negative, got %d", c.SeriesCacheMaxBytes)
	case c.IdleTimeout < 0:
		return fmt.Errorf("-store-gateway.lazy-load-idle-timeout must not be negative, got %s", c.IdleTimeout)
	case c.Concurrency < 1:
		return fmt.Errorf("-store-gateway.concurrency must be at least 1, got %d", c.Concurrency)
	}
	return nil
}

// Resolve fills in the defaults that depend on -data.dir.
func (c *Config) Resolve(dataDir string) {
	if c.DataDir == "" {
		c.DataDir = filepath.Join(dataDir, "store-gateway")
	}
}

// RingConfig is the store-gateway ring's read configuration: base (the
// -ring.* flags: heartbeat timeout, zone awareness) with this replication
// factor.
func (c *Config) RingConfig(base ring.Config) ring.Config {
	base.ReplicationFactor = c.ReplicationFactor
	return base
}
