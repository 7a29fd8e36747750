package compactor

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the compactor's configuration.
type Config struct {
	// DataDir is where blocks are downloaded and compacted; "" means
	// <-data.dir>/compactor (cmd/strata resolves it).
	DataDir                        string        `yaml:"data_dir"`
	CompactionInterval             time.Duration `yaml:"compaction_interval"`
	CleanupInterval                time.Duration `yaml:"cleanup_interval"`
	BlockRanges                    DurationList  `yaml:"block_ranges"`
	DeletionDelay                  time.Duration `yaml:"deletion_delay"`
	FirstLevelCompactionWaitPeriod time.Duration `yaml:"first_level_compaction_wait_period"`
	PartialBlockDeletionDelay      time.Duration `yaml:"partial_block_deletion_delay"`
	CompactionConcurrency          int           `yaml:"compaction_concurrency"`
}

// RegisterFlags registers the compactor's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "compactor.data-dir", "", "Directory the compactor downloads and merges blocks in (emptied after each group and at start); default <-data.dir>/compactor.")
	fs.DurationVar(&c.CompactionInterval, "compactor.compaction-interval", time.Hour, "How often the compactor compacts the blocks of the tenants it owns. POST /compactor/run starts a run at once.")
	fs.DurationVar(&c.CleanupInterval, "compactor.cleanup-interval", 15*time.Minute, "How often the compactor updates the bucket index of the tenants it owns, applies retention and deletes blocks past -compactor.deletion-delay. Keep it well below -blocks-storage.bucket-index.max-stale-period.")
	c.BlockRanges = DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	fs.Var(&c.BlockRanges, "compactor.block-ranges", "Comma-separated block ranges: the first is the ingesters' block range (their copies of it are merged into one block), each next one a multiple of the one before (blocks are merged into it once its range is complete).")
	fs.DurationVar(&c.DeletionDelay, "compactor.deletion-delay", 12*time.Hour, "How long a block marked for deletion (compacted into another, or past retention) stays in the bucket before it is deleted, so that queriers and store-gateways that still read it do not fail. Must be well above -blocks-storage.bucket-index.ignore-deletion-marks-delay plus -blocks-storage.bucket-index.max-stale-period.")
	fs.DurationVar(&c.FirstLevelCompactionWaitPeriod, "compactor.first-level-compaction-wait-period", 25*time.Minute, "How long after an ingester uploaded a block of the first range the compactor waits before merging the copies of that range, so that the other ingesters' copies are merged at once rather than one by one.")
	fs.DurationVar(&c.PartialBlockDeletionDelay, "compactor.partial-block-deletion-delay", 24*time.Hour, "A block without meta.json (an upload that failed half way) whose newest object is older than this is deleted.")
	fs.IntVar(&c.CompactionConcurrency, "compactor.compaction-concurrency", 1, "Tenants the compactor compacts at once; each compaction takes about one core.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.CompactionInterval <= 0:
		return fmt.Errorf("-compactor.compaction-interval must be positive, got %s", c.CompactionInterval)
	case c.CleanupInterval <= 0:
		return fmt.Errorf("-compactor.cleanup-interval must be positive, got %s", c.CleanupInterval)
	case c.DeletionDelay <= 0:
		return fmt.Errorf("-compactor.deletion-delay must be positive (readers may still read a marked block), got %s", c.DeletionDelay)
	case c.FirstLevelCompactionWaitPeriod < 0:
		return fmt.Errorf("-compactor.first-level-compaction-wait-period must not be negative, got %s", c.FirstLevelCompactionWaitPeriod)
	case c.PartialBlockDeletionDelay <= 0:
		return fmt.Errorf("-compactor.partial-block-deletion-delay must be positive (an upload in progress is partial), got %s", c.PartialBlockDeletionDelay)
	case c.CompactionConcurrency < 1:
		return fmt.Errorf("-compactor.compaction-concurrency must be at least 1, got %d", c.CompactionConcurrency)
	}
	return c.BlockRanges.validate()
}

// DurationList is a list of durations: a flag value "2h,12h,24h", in YAML
// a list or the same string.
type DurationList []time.Duration

// String implements flag.Value.
func (l *DurationList) String() string {
	s := make([]string, len(*l))
	for i, d := range *l {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// Set implements flag.Value.
func (l *DurationList) Set(v string) error {
	var out DurationList
	for _, part := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	*l = out
	return nil
}

// UnmarshalYAML accepts a list of durations or a comma-separated string.
func (l *DurationList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return l.Set(n.Value)
	}
	var ds []time.Duration
	if err := n.Decode(&ds); err != nil {
		return err
	}
	*l = ds
	return nil
}

// MarshalYAML writes the comma-separated form.
func (l DurationList) MarshalYAML() (any, error) { return l.String(), nil }

func (l DurationList) validate() error {
	if len(l) == 0 {
		return errors.New("-compactor.block-ranges must not be empty")
	}
	for i, d := range l {
		switch {
		case d <= 0 || d%time.Millisecond != 0:
			return fmt.Errorf("-compactor.block-ranges: %s is not a positive number of milliseconds", d)
		case i > 0 && d%l[i-1] != 0:
			return fmt.Errorf("-compactor.block-ranges: %s is not a multiple of %s", d, l[i-1])
		case i > 0 && d <= l[i-1]:
			return fmt.Errorf("-compactor.block-ranges: %s is not above %s", d, l[i-1])
		}
	}
	return nil
}

// ranges returns the block ranges in milliseconds.
func (l DurationList) ranges() []int64 {
	out := make([]int64, len(l))
	for i, d := range l {
		out[i] = d.Milliseconds()
	}
	return out
}
