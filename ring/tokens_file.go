package ring

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// TokensFileName is the file under -data.dir where an ingester keeps its
// tokens, so that a restart claims the same ones (and finds its series).
const TokensFileName = "tokens"

// maxTokensFileBytes bounds what LoadTokensFile reads: 1M tokens as JSON.
const maxTokensFileBytes = 16 << 20

type tokensFile struct {
	Tokens []uint32 `json:"tokens"`
}

// LoadTokensFile reads the tokens SaveTokensFile wrote, sorted and unique.
// A missing file is an error that matches fs.ErrNotExist: a first start.
func LoadTokensFile(path string) ([]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokensFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load tokens from %s: %w", path, err)
	}
	if len(b) > maxTokensFileBytes {
		return nil, fmt.Errorf("load tokens from %s: larger than %d bytes", path, maxTokensFileBytes)
	}
	var tf tokensFile
	if err := json.Unmarshal(b, &tf); err != nil {
		return nil, fmt.Errorf("load tokens from %s: %w", path, err)
	}
	if len(tf.Tokens) == 0 {
		return nil, fmt.Errorf("load tokens from %s: no tokens", path)
	}
	slices.Sort(tf.Tokens)
	return slices.Compact(tf.Tokens), nil
}

// SaveTokensFile writes tokens to path atomically: a temporary file in the
// same directory, synced, renamed over path, and the directory synced, so
// that a crash leaves the old file or the new one, never a torn one.
func SaveTokensFile(path string, tokens []uint32) (err error) {
	b, err := json.Marshal(tokensFile{Tokens: tokens})
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("save tokens to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save tokens: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save tokens: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, os.ErrInvalid) { // some filesystems cannot sync a directory
		return fmt.Errorf("save tokens: sync directory %s: %w", dir, err)
	}
	return nil
}
