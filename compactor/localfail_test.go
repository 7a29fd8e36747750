package compactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

// localFault says when to fail the open or the read of the first local
// copy of one block (its directory is named by its ULID alone; a fresh
// download's is not): times times, or always when times is 0.
type localFault struct {
	mu    sync.Mutex
	id    string
	times int
	n     int
}

func (f *localFault) hit(dir string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if filepath.Base(dir) != f.id || (f.times > 0 && f.n >= f.times) {
		return false
	}
	f.n++
	return true
}

// A failure of the compactor's local copy of a block (a fresh download
// reads fine, or the error is plainly local: EMFILE, ENOMEM, ...) is no
// fault of the block: it gets no mark, and is never dropped as a damaged
// copy.
func TestLocalFailureIsNotTheBlocks(t *testing.T) {
	emfile := func(dir string) error { return &os.PathError{Op: "open", Path: dir, Err: syscall.EMFILE} }
	for _, tc := range []struct {
		name       string
		rf         int
		copies     int
		damaged    []int  // copies really damaged in the bucket
		target     int    // the copy whose local copy fails
		stage      string // "open" or "verify"
		err        func(dir string) error
		times      int
		wantRunErr bool  // the first run fails (the group, retried)
		wantDrop   []int // copies marked for deletion at the end
		wantLive   int   // live blocks at the end
	}{
		{
			name: "open fails, a fresh download opens", rf: 2, copies: 2, target: 0, stage: "open",
			err: func(string) error { return errors.New("injected: invalid magic number") }, wantLive: 1,
		},
		{
			name: "open fails with EMFILE", rf: 2, copies: 2, target: 1, stage: "open",
			err: emfile, times: 1, wantRunErr: true, wantLive: 1,
		},
		{
			name: "open fails with ENOMEM on mmap", rf: 2, copies: 2, target: 0, stage: "open",
			err: func(string) error { return fmt.Errorf("mmap, size 42: %w", syscall.ENOMEM) }, times: 1, wantRunErr: true, wantLive: 1,
		},
		{
			name: "good copy's read fails, a fresh download reads", rf: 2, copies: 2, damaged: []int{0}, target: 1, stage: "verify",
			err: func(string) error { return errors.New("injected: checksum mismatch") }, wantDrop: []int{0}, wantLive: 1,
		},
		{
			name: "good copy's read fails with EIO", rf: 2, copies: 2, damaged: []int{0}, target: 1, stage: "verify",
			err: func(dir string) error { return &os.PathError{Op: "read", Path: dir, Err: syscall.EIO} }, times: 1, wantRunErr: true,
			wantLive: -1, // depends on the order the copies were verified in
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d0 := day0()
			bkt := fsBucket(t)
			e := newEnv(t, bkt, func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour} })
			e.c.rf = tc.rf
			g1 := genData(10, d0, d0+2*hourMs)
			ids := make([]ulid.ULID, tc.copies)
			for i := range tc.copies {
				m := upload(t, bkt, "t1", makeBlock(t, t.TempDir(), g1), fmt.Sprint("ing-", i))
				ids[i] = m.ULID
				if slices.Contains(tc.damaged, i) {
					replaceObject(t, bkt, path.Join("t1", m.ULID.String(), "chunks/000001"), func(b []byte) []byte { return append(b[:8:8], garbage(b[8:])...) })
				}
			}
			f := &localFault{id: ids[tc.target].String(), times: tc.times}
			if tc.stage == "open" {
				e.c.openBlock = func(log *slog.Logger, dir string) (*tsdb.Block, error) {
					if f.hit(dir) {
						return nil, tc.err(dir)
					}
					return openBlock(log, dir)
				}
			} else {
				e.c.verifyBlock = func(ctx context.Context, b *tsdb.Block) error {
					if f.hit(b.Dir()) {
						return tc.err(b.Dir())
					}
					return verifyBlock(ctx, b)
				}
			}

			err := e.c.runOnce(e.ctx, true)
			require.Positive(t, f.n, "the fault was injected")
			if tc.wantRunErr {
				require.Error(t, err)
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.compactionFailures))
				e.requireNoMarks(t, ids[tc.target])
				for _, id := range ids {
					dm, err := block.ReadDeletionMark(e.ctx, objstore.NewPrefixedBucket(bkt, "t1"), id)
					require.NoError(t, err)
					require.Nil(t, dm, "no block dropped by a failed run")
				}
				e.run(true) // the local failure passed
			} else {
				require.NoError(t, err)
				require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.compactionFailures))
			}

			e.requireNoMarks(t, ids[tc.target])
			for i, id := range ids {
				if slices.Contains(tc.damaged, i) || i == tc.target {
					continue
				}
				e.requireNoMarks(t, id)
			}
			if tc.wantRunErr && tc.wantLive < 0 {
				return
			}
			tb := objstore.NewPrefixedBucket(bkt, "t1")
			for _, i := range tc.damaged {
				nc, err := block.ReadNoCompactMark(e.ctx, tb, ids[i])
				require.NoError(t, err)
				require.NotNil(t, nc, "the damaged copy is still marked no-compact")
				dm, err := block.ReadDeletionMark(e.ctx, tb, ids[i])
				require.NoError(t, err)
				require.Equal(t, slices.Contains(tc.wantDrop, i), dm != nil, "damaged copy marked for deletion")
			}
			require.Equal(t, float64(len(tc.damaged)), testutil.ToFloat64(e.c.m.noCompact.WithLabelValues(noCompactRead)))
			require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.noCompact.WithLabelValues(noCompactOpen)))
			live := e.live("t1")
			require.Len(t, live, tc.wantLive)
			require.Equal(t, g1, e.read("t1", live[0].ID), "every sample kept")
		})
	}
}

// requireNoMarks fails unless block id of t1 has neither a no-compact nor
// a deletion mark.
func (e *env) requireNoMarks(t *testing.T, id ulid.ULID) {
	t.Helper()
	tb := objstore.NewPrefixedBucket(e.bkt, "t1")
	nc, err := block.ReadNoCompactMark(e.ctx, tb, id)
	require.NoError(t, err)
	require.Nil(t, nc, "block %s marked no-compact", id)
	dm, err := block.ReadDeletionMark(e.ctx, tb, id)
	require.NoError(t, err)
	if dm != nil && strings.HasPrefix(dm.Reason, "compacted into ") {
		return // merged: that mark is the compaction's
	}
	require.Nil(t, dm, "block %s marked for deletion", id)
}
