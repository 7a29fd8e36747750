package blockupload

import (
	"flag"
	"fmt"
	"time"
)

// Config bounds what one upload may bring.
type Config struct {
	MaxFileBytes  int64         `yaml:"max_file_bytes"`
	MaxBlockBytes int64         `yaml:"max_block_bytes"`
	FutureGrace   time.Duration `yaml:"future_grace"`
}

// RegisterFlags registers the flags of block uploads.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxFileBytes, "compactor.block-upload-max-file-bytes", 4<<30, "Largest file (index or chunks segment) of an uploaded block, in bytes; larger get 413.")
	fs.Int64Var(&c.MaxBlockBytes, "compactor.block-upload-max-block-bytes", 16<<30, "Largest uploaded block (all its files), in bytes; larger get 413. The compactor verifies a block in a temporary directory under -compactor.data-dir, one block at a time: this is the disk that takes.")
	fs.DurationVar(&c.FutureGrace, "compactor.block-upload-future-grace", 10*time.Minute, "How far past the compactor's clock an uploaded block may end; later get 400 (a block from a machine whose clock is wrong).")
}

// Validate checks the flags.
func (c *Config) Validate() error {
	switch {
	case c.MaxFileBytes <= 0:
		return fmt.Errorf("-compactor.block-upload-max-file-bytes must be positive, got %d", c.MaxFileBytes)
	case c.MaxBlockBytes < c.MaxFileBytes:
		return fmt.Errorf("-compactor.block-upload-max-block-bytes (%d) must be at least -compactor.block-upload-max-file-bytes (%d)", c.MaxBlockBytes, c.MaxFileBytes)
	case c.FutureGrace < 0:
		return fmt.Errorf("-compactor.block-upload-future-grace must not be negative, got %s", c.FutureGrace)
	}
	return nil
}
