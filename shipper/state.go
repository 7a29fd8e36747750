package shipper

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
)

// state is the shipped-state file: every shipped block still on disk with
// its upload time.
type state struct {
	Version int            `json:"version"`
	Shipped []shippedBlock `json:"shipped"`
}

type shippedBlock struct {
	ID         ulid.ULID `json:"id"`
	UploadedAt time.Time `json:"uploaded_at"`
}

const stateVersion = 1

// readState reads the state file; a missing file is an empty state.
func readState(name string) (map[ulid.ULID]time.Time, error) {
	shipped := map[ulid.ULID]time.Time{}
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return shipped, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("decoding %s: unsupported version %d", name, st.Version)
	}
	for _, sb := range st.Shipped {
		shipped[sb.ID] = sb.UploadedAt
	}
	return shipped, nil
}

// save writes the state file atomically: a temporary file, fsync, rename,
// fsync of the directory. A crash leaves the old file or the new one.
func (s *Shipper) save() error {
	st := state{Version: stateVersion}
	s.mu.RLock()
	for id, at := range s.shipped {
		st.Shipped = append(st.Shipped, shippedBlock{ID: id, UploadedAt: at.UTC()})
	}
	s.mu.RUnlock()
	slices.SortFunc(st.Shipped, func(a, b shippedBlock) int { return a.ID.Compare(b.ID) })
	b, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding shipped state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, StateFilename), b); err != nil {
		return fmt.Errorf("writing shipped state of tenant %q: %w", s.tenant, err)
	}
	return nil
}

func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
