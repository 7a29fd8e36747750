package compactor

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, cfg.Validate())
	require.Equal(t, "2h0m0s,12h0m0s,24h0m0s", fs.Lookup("compactor.block-ranges").DefValue)
	require.Equal(t, Config{
		CompactionInterval: time.Hour, CleanupInterval: 15 * time.Minute,
		BlockRanges:   DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour},
		DeletionDelay: 12 * time.Hour, FirstLevelCompactionWaitPeriod: 25 * time.Minute,
		PartialBlockDeletionDelay: 24 * time.Hour, CompactionConcurrency: 1,
	}, cfg)

	require.NoError(t, fs.Parse([]string{"-compactor.block-ranges=1h, 4h"}))
	require.Equal(t, DurationList{time.Hour, 4 * time.Hour}, cfg.BlockRanges)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"no compaction interval", func(c *Config) { c.CompactionInterval = 0 }, "-compactor.compaction-interval must be positive"},
		{"no cleanup interval", func(c *Config) { c.CleanupInterval = 0 }, "-compactor.cleanup-interval must be positive"},
		{"no deletion delay", func(c *Config) { c.DeletionDelay = 0 }, "-compactor.deletion-delay must be positive"},
		{"negative wait", func(c *Config) { c.FirstLevelCompactionWaitPeriod = -1 }, "first-level-compaction-wait-period must not be negative"},
		{"no partial delay", func(c *Config) { c.PartialBlockDeletionDelay = 0 }, "partial-block-deletion-delay must be positive"},
		{"no concurrency", func(c *Config) { c.CompactionConcurrency = 0 }, "compaction-concurrency must be at least 1"},
		{"no ranges", func(c *Config) { c.BlockRanges = nil }, "block-ranges must not be empty"},
		{"not a multiple", func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 5 * time.Hour} }, "5h0m0s is not a multiple of 2h0m0s"},
		{"not increasing", func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour, 2 * time.Hour} }, "2h0m0s is not above 2h0m0s"},
		{"sub-millisecond", func(c *Config) { c.BlockRanges = DurationList{time.Microsecond} }, "not a positive number of milliseconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestDurationListYAML(t *testing.T) {
	for _, in := range []string{"block_ranges: 1h,2h", "block_ranges: [1h, 2h]"} {
		var cfg Config
		require.NoError(t, yaml.Unmarshal([]byte(in), &cfg), in)
		require.Equal(t, DurationList{time.Hour, 2 * time.Hour}, cfg.BlockRanges, in)
	}
	out, err := yaml.Marshal(Config{BlockRanges: DurationList{time.Hour}})
	require.NoError(t, err)
	require.Contains(t, string(out), "block_ranges: 1h0m0s\n")
}

func TestNewErrors(t *testing.T) {
	cfg := testConfig(t)
	_, err := New(cfg, Deps{})
	require.ErrorContains(t, err, "no bucket")
	cfg.DataDir = ""
	_, err = New(cfg, Deps{})
	require.ErrorContains(t, err, "-compactor.data-dir is not set")
}
