package ingester

import (
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Config is the ingester's configuration. The data directory is not here:
// it belongs to the process (-data.dir) and is handed to New.
type Config struct {
	RetentionPeriod           time.Duration `yaml:"retention_period"`
	BlockRangesPeriod         time.Duration `yaml:"block_ranges_period"`
	HeadCompactionInterval    time.Duration `yaml:"head_compaction_interval"`
	HeadCompactionIdleTimeout time.Duration `yaml:"head_compaction_idle_timeout"`
	WALCompression            string        `yaml:"wal_compression"`
	MaxExemplars              int           `yaml:"max_exemplars"`
	OutOfOrderTimeWindow      time.Duration `yaml:"out_of_order_time_window"`
	MaxMetadataPerTenant      int           `yaml:"max_metadata_per_tenant"`
	ShipInterval              time.Duration `yaml:"ship_interval"`
	RetainShippedFor          time.Duration `yaml:"retain_shipped_for"`
	FlushOnShutdown           bool          `yaml:"flush_on_shutdown"`
	MinFreeDiskBytes          int64         `yaml:"min_free_disk_bytes"`
}

// RegisterFlags registers the ingester's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RetentionPeriod, "blocks-storage.tsdb.retention-period", 24*time.Hour, "How long an ingester keeps a tenant's finished blocks on local disk.")
	fs.DurationVar(&c.BlockRangesPeriod, "blocks-storage.tsdb.block-ranges-period", 2*time.Hour, "Time range of the blocks the ingester cuts from a tenant's head.")
	fs.DurationVar(&c.HeadCompactionInterval, "blocks-storage.tsdb.head-compaction-interval", time.Minute, "How often the ingester checks, one tenant at a time, whether a tenant's head can be cut into a block (and each TSDB reloads and retains its blocks); at least 1s.")
	// 1h, as Mimir: long beside the gaps of a tenant that pushes at all
	// (seconds), short beside a block range, so an abandoned head is in the
	// bucket and out of the WAL within the hour.
	fs.DurationVar(&c.HeadCompactionIdleTimeout, "blocks-storage.tsdb.head-compaction-idle-timeout", time.Hour, "A tenant's head that received no push for this long is cut into blocks (and shipped) whole, as POST /ingester/flush does; its samples at or before the cut are refused afterwards. Checked every -blocks-storage.tsdb.head-compaction-interval; 0 never cuts an idle head.")
	// Snappy, not zstd: the WAL is written on every push, and snappy costs a
	// fraction of zstd's CPU per byte while still shrinking WAL records about
	// twofold; CPU per sample is what Strata competes on, disk is cheap.
	fs.StringVar(&c.WALCompression, "blocks-storage.tsdb.wal-compression", string(compression.Snappy), "Compression of WAL records: none, snappy or zstd.")
	fs.IntVar(&c.MaxExemplars, "blocks-storage.tsdb.max-exemplars", 100000, "Exemplars kept in memory per tenant (a circular buffer); 0 disables exemplar storage.")
	fs.DurationVar(&c.OutOfOrderTimeWindow, "ingester.out-of-order-time-window", 0, "How far behind a series' newest sample a sample may be and still be accepted; 0 rejects out-of-order samples.")
	fs.IntVar(&c.MaxMetadataPerTenant, "ingester.max-metadata-per-tenant", 10000, "Metric families per tenant whose metadata (type, help, unit) the ingester keeps; 0 keeps none.")
	// 1m: a round with nothing new costs a directory listing per tenant and
	// no bucket request, and a block reaches the bucket within a minute of
	// being cut, well inside the hour between -querier.query-ingesters-within
	// and -ingester.retain-shipped-for.
	fs.DurationVar(&c.ShipInterval, "ingester.ship-interval", time.Minute, "How often the ingester uploads the blocks it cut to object storage; a failed upload is retried at the next round.")
	// 13h: an hour more than the queriers ask ingesters for (12h), so a
	// block is indexed and loaded by store-gateways before ingesters stop
	// serving it.
	fs.DurationVar(&c.RetainShippedFor, "ingester.retain-shipped-for", 13*time.Hour, "How long an uploaded block stays on the ingester's disk, counted from its upload and from its newest sample (both must be this old); keep it above -querier.query-ingesters-within. A block not yet uploaded is never deleted.")
	// false: with the WAL on a persistent disk a restart replays it and
	// loses nothing; cutting partial blocks on every rolling restart would
	// only slow shutdowns and multiply small blocks.
	fs.BoolVar(&c.FlushOnShutdown, "ingester.flush-on-shutdown", false, "On graceful shutdown, cut every tenant's in-memory data into blocks and upload them before exiting: for scale-down, or a disk that does not outlive the process.")
	// 256 MiB: two WAL segments (128 MiB each). Reopening a tenant whose WAL
	// write failed may rewrite its last segment (Prometheus' repair copies
	// it record by record) and starts a new one; both must fit, or the
	// repair itself fails. Small beside the disk an ingester needs anyway
	// (WAL, head chunks and blocks of every tenant).
	fs.Int64Var(&c.MinFreeDiskBytes, "ingester.min-free-disk-bytes", 256<<20, "Free space the data directory's disk must keep: while it has less, pushes are refused with 503 (retried by the sender) and no tenant's WAL is written. Leave room for a WAL repair (a 128 MiB segment); 0 turns the check off.")
}

// Validate checks the configuration for values that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.BlockRangesPeriod < time.Minute:
		return fmt.Errorf("-blocks-storage.tsdb.block-ranges-period must be at least 1m, got %s", c.BlockRangesPeriod)
	case c.RetentionPeriod < c.BlockRangesPeriod:
		return fmt.Errorf("-blocks-storage.tsdb.retention-period (%s) must be at least -blocks-storage.tsdb.block-ranges-period (%s)", c.RetentionPeriod, c.BlockRangesPeriod)
	case c.HeadCompactionInterval < time.Second:
		return fmt.Errorf("-blocks-storage.tsdb.head-compaction-interval must be at least 1s, got %s", c.HeadCompactionInterval)
	case c.HeadCompactionIdleTimeout < 0:
		return fmt.Errorf("-blocks-storage.tsdb.head-compaction-idle-timeout must not be negative, got %s", c.HeadCompactionIdleTimeout)
	case c.MaxExemplars < 0:
		return fmt.Errorf("-blocks-storage.tsdb.max-exemplars must not be negative, got %d", c.MaxExemplars)
	case c.OutOfOrderTimeWindow < 0:
		return fmt.Errorf("-ingester.out-of-order-time-window must not be negative, got %s", c.OutOfOrderTimeWindow)
	case c.MaxMetadataPerTenant < 0:
		return fmt.Errorf("-ingester.max-metadata-per-tenant must not be negative, got %d", c.MaxMetadataPerTenant)
	case c.ShipInterval < time.Second:
		return fmt.Errorf("-ingester.ship-interval must be at least 1s, got %s", c.ShipInterval)
	case c.MinFreeDiskBytes < 0:
		return fmt.Errorf("-ingester.min-free-disk-bytes must not be negative, got %d", c.MinFreeDiskBytes)
	case c.RetainShippedFor < 0:
		return fmt.Errorf("-ingester.retain-shipped-for must not be negative, got %s", c.RetainShippedFor)
	}
	switch compression.Type(c.WALCompression) {
	case compression.None, compression.Snappy, compression.Zstd:
	default:
		return fmt.Errorf("-blocks-storage.tsdb.wal-compression must be none, snappy or zstd, got %q", c.WALCompression)
	}
	return nil
}

// tsdbOptions turns the configuration into the options of one tenant's TSDB.
func (c *Config) tsdbOptions() *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.RetentionDuration = c.RetentionPeriod.Milliseconds()
	// Only blocks of one range: blocks are never compacted into larger ones
	// on the ingester, because they are shipped as they are cut and merged
	// (with the other replicas' copies) by the compactor.
	o.MinBlockDuration = c.BlockRangesPeriod.Milliseconds()
	o.MaxBlockDuration = c.BlockRangesPeriod.Milliseconds()
	// Out-of-order blocks overlap in-order ones; merging them here would
	// rewrite blocks that may already be shipped. The querier merges
	// overlapping blocks at read time and the compactor for good.
	o.EnableOverlappingCompaction = false
	// The DB's own loop reloads blocks and applies retention on this
	// period; its compaction is turned off and the ingester's compaction
	// loop (compact.go) cuts the heads on the same period.
	o.BlockReloadInterval = c.HeadCompactionInterval
	o.WALCompression = compression.Type(c.WALCompression)
	o.OutOfOrderTimeWindow = c.OutOfOrderTimeWindow.Milliseconds()
	o.EnableExemplarStorage = c.MaxExemplars > 0
	o.MaxExemplars = int64(c.MaxExemplars)
	// Isolation hides half-committed appends from concurrent queries at the
	// cost of bookkeeping on every append. A push is not a transaction users
	// can observe (each replica commits at its own moment anyway), so, as
	// Cortex and Mimir ingesters do, Strata turns it off.
	o.IsolationDisabled = true
	// With shipping, openShipper (ship.go) replaces BlocksToDelete: a block
	// goes once uploaded and -ingester.retain-shipped-for old, never before.
	return o
}
