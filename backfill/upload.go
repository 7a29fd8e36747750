package backfill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"golang.org/x/time/rate"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/blockupload"
)

// LocalBlock is a block on disk to upload.
type LocalBlock struct {
	Dir   string
	ID    ulid.ULID
	Meta  []byte // meta.json as Prometheus wrote it
	Files []block.File
	Bytes int64 // of Files
}

// FindBlocks returns the blocks of a Prometheus TSDB directory (its
// subdirectories named by a ULID and holding a meta.json), or dir itself
// when it is one block, oldest first. The WAL and the head's chunks are not
// blocks: stop Prometheus, or snapshot it, so that the head is in blocks.
func FindBlocks(dir string) ([]LocalBlock, error) {
	if _, err := os.Stat(filepath.Join(dir, block.MetaFilename)); err == nil {
		b, err := readLocalBlock(dir)
		if err != nil {
			return nil, err
		}
		return []LocalBlock{b}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading TSDB directory: %w", err)
	}
	var out []LocalBlock
	for _, e := range entries {
		if _, ok := block.ParseDir(e.Name()); !ok || !e.IsDir() {
			continue
		}
		b, err := readLocalBlock(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no TSDB blocks (directories named by a ULID with a meta.json)", dir)
	}
	slices.SortFunc(out, func(a, b LocalBlock) int { return a.ID.Compare(b.ID) })
	return out, nil
}

func readLocalBlock(dir string) (LocalBlock, error) {
	m, err := block.ReadMetaFile(dir)
	if err != nil {
		return LocalBlock{}, fmt.Errorf("block %s: %w", dir, err)
	}
	meta, err := os.ReadFile(filepath.Join(dir, block.MetaFilename))
	if err != nil {
		return LocalBlock{}, fmt.Errorf("block %s: %w", dir, err)
	}
	// Deleted series live in tombstones, which the upload does not carry:
	// they would come back.
	ts, _, err := tombstones.ReadTombstones(dir)
	if err != nil {
		return LocalBlock{}, fmt.Errorf("block %s: reading tombstones: %w", dir, err)
	}
	if n := ts.Total(); n > 0 {
		return LocalBlock{}, fmt.Errorf("block %s has %d deletions in its tombstones, which an upload does not carry: apply them first (Prometheus' /api/v1/admin/tsdb/clean_tombstones)", dir, n)
	}
	b := LocalBlock{Dir: dir, ID: m.ULID, Meta: meta}
	entries, err := os.ReadDir(filepath.Join(dir, block.ChunksDirname))
	if err != nil {
		return LocalBlock{}, fmt.Errorf("block %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := b.add(block.ChunksDirname + "/" + e.Name()); err != nil {
			return LocalBlock{}, err
		}
	}
	if err := b.add(block.IndexFilename); err != nil {
		return LocalBlock{}, err
	}
	return b, nil
}

func (b *LocalBlock) add(p string) error {
	fi, err := os.Stat(filepath.Join(b.Dir, filepath.FromSlash(p)))
	if err != nil {
		return fmt.Errorf("block %s: %w", b.Dir, err)
	}
	b.Files = append(b.Files, block.File{Path: p, Size: fi.Size()})
	b.Bytes += fi.Size()
	return nil
}

// Uploader sends blocks one after another, resuming what the server has.
type Uploader struct {
	Client *Client
	// Progress is told of every byte sent and block done; nil for none.
	Progress *Progress
	// Limit, when set, bounds the bytes per second sent.
	Limit *rate.Limiter
	// Retries is how often a block is tried again after an error that
	// may pass (no answer, a 5xx: the compactor restarting), waiting
	// RetryWait, then twice as long each time (at most a minute); a 4xx
	// is final. The retry resumes: files the server has are not sent
	// again.
	Retries   int
	RetryWait time.Duration
	// OnRetry, when set, is told of each retry before its wait.
	OnRetry func(err error, wait time.Duration)
	// BusyWait bounds how long a finish answered 429 (the server verifies
	// another block, one at a time) is tried again, waiting the answer's
	// Retry-After (RetryWait without one, at most maxBusyStep) each time;
	// 0: a 429 is final.
	BusyWait time.Duration

	// sleep waits d or until ctx ends; time.After when nil.
	sleep func(ctx context.Context, d time.Duration) error
}

// maxBusyStep bounds one wait for a busy server, whatever its Retry-After.
const maxBusyStep = 5 * time.Minute

// Upload uploads blocks in order. A block the server has already is
// skipped; a block it has part of is resumed.
func (u *Uploader) Upload(ctx context.Context, blocks []LocalBlock) error {
	for _, b := range blocks {
		wait := u.RetryWait
		for attempt := 0; ; attempt++ {
			err := u.uploadBlock(ctx, b)
			if err == nil {
				break
			}
			if attempt >= u.Retries || !mayPass(err) || ctx.Err() != nil {
				return err
			}
			if u.OnRetry != nil {
				u.OnRetry(err, wait)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return err
			}
			wait = min(2*wait, time.Minute)
		}
	}
	return nil
}

// mayPass reports whether err may pass on a retry: anything but the
// server's 4xx (what was sent is wrong and stays wrong).
func mayPass(err error) bool {
	se, ok := errors.AsType[*ServerError](err)
	return !ok || se.Status >= 500
}

func (u *Uploader) uploadBlock(ctx context.Context, b LocalBlock) error {
	st, err := u.Client.Check(ctx, b.ID)
	if err != nil {
		return err
	}
	if st.State == blockupload.StateComplete {
		u.Progress.skipped(b, b.Bytes)
		return nil
	}
	if st, err = u.Client.Start(ctx, b.ID, b.Meta); err != nil {
		return err
	}
	have := map[string]blockupload.FileState{}
	for _, f := range st.Files {
		have[f.Path] = f
	}
	for _, f := range b.Files {
		if h, ok := have[f.Path]; ok && h.Size == f.Size {
			same, err := sameSHA256(filepath.Join(b.Dir, filepath.FromSlash(f.Path)), h.SHA256)
			if err != nil {
				return err
			}
			if same {
				u.Progress.resumed(f.Size)
				continue
			}
		}
		if err := u.sendFile(ctx, b, f); err != nil {
			return err
		}
	}
	if err := u.finish(ctx, b.ID); err != nil {
		return err
	}
	u.Progress.blockDone(b)
	return nil
}

// finish finishes block id, trying again for up to BusyWait while the
// server answers 429.
func (u *Uploader) finish(ctx context.Context, id ulid.ULID) error {
	var waited time.Duration
	for {
		err := u.Client.Finish(ctx, id)
		se, ok := errors.AsType[*ServerError](err)
		if !ok || se.Status != http.StatusTooManyRequests {
			return err
		}
		wait := se.RetryAfter
		if wait <= 0 {
			wait = u.RetryWait
		}
		wait = min(max(wait, time.Millisecond), maxBusyStep)
		if waited+wait > u.BusyWait {
			return err
		}
		waited += wait
		if u.OnRetry != nil {
			u.OnRetry(err, wait)
		}
		if serr := u.wait(ctx, wait); serr != nil {
			return err
		}
	}
}

func (u *Uploader) wait(ctx context.Context, d time.Duration) error {
	if u.sleep != nil {
		return u.sleep(ctx, d)
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *Uploader) sendFile(ctx context.Context, b LocalBlock, f block.File) error {
	fh, err := os.Open(filepath.Join(b.Dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return fmt.Errorf("block %s: %w", b.Dir, err)
	}
	defer fh.Close()
	r := &sendReader{ctx: ctx, r: io.LimitReader(fh, f.Size), p: u.Progress, limit: u.Limit}
	if err := u.Client.File(ctx, b.ID, f.Path, r, f.Size); err != nil {
		u.Progress.unsend(r.n)
		return err
	}
	return nil
}

func sameSHA256(name, want string) (bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("hashing %s: %w", name, err)
	}
	return strings.EqualFold(hex.EncodeToString(h.Sum(nil)), want), nil
}

// sendReader reports what the HTTP client reads to the progress and waits
// for the rate limit.
type sendReader struct {
	ctx   context.Context
	r     io.Reader
	p     *Progress
	limit *rate.Limiter
	n     int64
}

func (s *sendReader) Read(b []byte) (int, error) {
	if s.limit != nil && len(b) > s.limit.Burst() {
		b = b[:s.limit.Burst()]
	}
	n, err := s.r.Read(b)
	if n > 0 && s.limit != nil {
		if werr := s.limit.WaitN(s.ctx, n); werr != nil {
			return 0, werr
		}
	}
	s.n += int64(n)
	s.p.sent(int64(n))
	return n, err
}
