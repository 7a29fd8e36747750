package blockupload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// StateFilename is an upload's state inside the block's directory. The
// block has no meta.json while it is there, so readers see a partial block
// and skip it, and the compactor deletes it once abandoned (its newest
// object older than -compactor.partial-block-deletion-delay).
const StateFilename = "uploading.json"

// The states of a block in the answer of check.
const (
	StateAbsent    = "absent"    // nothing of it in the bucket: start
	StateUploading = "uploading" // started: send the files not in Files, then finish
	StateComplete  = "complete"  // meta.json is there: nothing to do
)

// FileState is one file received for an upload.
type FileState struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex
}

// uploadState is uploading.json.
type uploadState struct {
	StartedAt time.Time   `json:"started_at"`
	Meta      block.Meta  `json:"meta"`
	Files     []FileState `json:"files"`
}

// Status is the answer of check: what the bucket holds of a block.
type Status struct {
	State string      `json:"state"`
	Files []FileState `json:"files,omitempty"`
}

func (s *uploadState) file(p string) (FileState, bool) {
	for _, f := range s.Files {
		if f.Path == p {
			return f, true
		}
	}
	return FileState{}, false
}

func (s *uploadState) setFile(fs FileState) {
	for i, f := range s.Files {
		if f.Path == fs.Path {
			s.Files[i] = fs
			return
		}
	}
	s.Files = append(s.Files, fs)
}

func (s *uploadState) bytes() int64 {
	var n int64
	for _, f := range s.Files {
		n += f.Size
	}
	return n
}

// blockFiles lists the files for meta.json, sorted by path (chunks, then
// the index: the order the shipper uploads in).
func (s *uploadState) blockFiles() []block.File {
	files := make([]block.File, 0, len(s.Files))
	for _, f := range s.Files {
		files = append(files, block.File{Path: f.Path, Size: f.Size})
	}
	slices.SortFunc(files, func(a, b block.File) int { return strings.Compare(a.Path, b.Path) })
	return files
}

func statePath(id ulid.ULID) string { return path.Join(id.String(), StateFilename) }

// readState reads block id's upload state from tbkt (a tenant's bucket);
// nil when there is none.
func readState(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID) (*uploadState, error) {
	name := statePath(id)
	ok, err := tbkt.Exists(ctx, name)
	if err != nil || !ok {
		return nil, err
	}
	r, err := tbkt.Get(ctx, name)
	if err != nil {
		if tbkt.IsObjNotFoundErr(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer r.Close()
	var s uploadState
	if err := json.NewDecoder(io.LimitReader(r, 16*maxMetaBytes)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return &s, nil
}

func writeState(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID, s *uploadState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding upload state: %w", err)
	}
	if err := tbkt.Upload(ctx, statePath(id), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("writing %s: %w", statePath(id), err)
	}
	return nil
}

// complete reports whether block id's meta.json is in tbkt.
func complete(ctx context.Context, tbkt objstore.Bucket, id ulid.ULID) (bool, error) {
	ok, err := tbkt.Exists(ctx, path.Join(id.String(), block.MetaFilename))
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", path.Join(id.String(), block.MetaFilename), err)
	}
	return ok, nil
}
