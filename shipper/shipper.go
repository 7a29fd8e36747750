package shipper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/tenant"
)

// Deps is what a Shipper works with.
type Deps struct {
	// Dir is the tenant's TSDB directory: blocks are its subdirectories
	// named by ULID, and the shipped-state file goes there too.
	Dir string
	// Bucket is the whole bucket; the Shipper works under Tenant's prefix.
	Bucket objstore.Bucket
	Tenant string
	// Ingester is the instance id written into every block's meta.json.
	Ingester string
	// Metrics may be nil (no metrics); one Metrics serves many Shippers.
	Metrics *Metrics
	Log     *slog.Logger     // nil: no logs
	Now     func() time.Time // nil: time.Now
	// Indexed, if set, is called after Sync added blocks to the tenant's
	// bucket index, so that readers in the same process reload it
	// (bucketindex.Loader.Refresh) instead of waiting for their next
	// reload. It runs on Sync's goroutine.
	Indexed func(ctx context.Context, tenant string)
}

// Shipper uploads one tenant's blocks. Sync is serialised; Shipped and
// BlocksToDelete's function may run concurrently with it.
type Shipper struct {
	dir    string
	bkt    objstore.Bucket // the tenant's prefix
	ext    block.Ext
	tenant string
	m      *Metrics
	log    *slog.Logger
	now    func() time.Time

	syncMu  sync.Mutex // one Sync at a time; guards pending and unindexed
	pending int        // blocks not uploaded at the end of the last Sync
	// unindexed are the blocks uploaded that no read of the bucket index
	// has shown in it yet (index.go).
	unindexed map[ulid.ULID]bucketindex.Block
	indexed   func(ctx context.Context, tenant string)
	bktRoot   objstore.Bucket // the whole bucket, for the index

	mu      sync.RWMutex
	shipped map[ulid.ULID]time.Time // upload times; guarded by mu
}

// StateFilename is the shipped-state file in the tenant's TSDB directory.
const StateFilename = "strata-shipped.json"

// New returns the Shipper of one tenant's TSDB directory, reading what was
// shipped from its state file. A missing state file means nothing was
// shipped yet; an unreadable one is logged and ignored: Sync then finds the
// blocks already in the bucket and records them without uploading again.
func New(d Deps) (*Shipper, error) {
	if err := tenant.Validate(d.Tenant); err != nil {
		return nil, fmt.Errorf("shipper: %w", err)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Shipper{
		dir:    d.Dir,
		bkt:    objstore.NewPrefixedBucket(d.Bucket, d.Tenant),
		ext:    block.Ext{Tenant: d.Tenant, Source: block.SourceIngester, Ingester: d.Ingester},
		tenant: d.Tenant,
		m:      d.Metrics,
		log:    d.Log.With("tenant", d.Tenant),
		now:    d.Now,

		unindexed: map[ulid.ULID]bucketindex.Block{},
		indexed:   d.Indexed,
		bktRoot:   d.Bucket,
	}
	shipped, err := readState(filepath.Join(d.Dir, StateFilename))
	if err != nil {
		s.log.Warn("ignoring unreadable shipped-state file; blocks found in the bucket will be recorded again", "err", err)
		shipped = map[ulid.ULID]time.Time{}
	}
	s.shipped = shipped
	return s, nil
}

// Shipped returns when block id was uploaded, if it was (and is still on
// disk, as of the last Sync).
func (s *Shipper) Shipped(id ulid.ULID) (at time.Time, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	at, ok = s.shipped[id]
	return at, ok
}

// Sync uploads every block in the TSDB directory that is not shipped yet,
// oldest first, and records each in the state file as soon as it is in the
// bucket. A block whose meta.json already reads from the bucket (shipped
// before the state file was written, or the state file was lost) is
// recorded without uploading. A failed upload is counted and returned,
// Sync goes on with the next block, and the failed one is tried again at
// the next Sync:
// block.Upload writes meta.json last, so a half-uploaded block stays
// invisible to readers, and the next upload overwrites its objects.
//
// It returns how many blocks became shipped and the errors met (joined).
func (s *Shipper) Sync(ctx context.Context) (shipped int, err error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	metas, present, errs, err := s.localBlocks()
	if err != nil {
		return 0, err // the pending gauge keeps the last figure
	}
	var (
		pending = len(errs) // unreadable blocks are not shipped either
		changed = s.forget(present)
	)
	for _, m := range metas {
		if _, ok := s.Shipped(m.ULID); ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			pending++
			continue
		}
		if err := s.ship(ctx, m); err != nil {
			pending++
			if ctx.Err() == nil { // not a failure: shutting down
				s.m.failed(s.tenant)
			}
			errs = append(errs, err)
			continue
		}
		shipped++
		changed = true
		if err := s.save(); err != nil {
			errs = append(errs, err) // the record is in memory; the bucket check restores it after a restart
		}
	}
	if changed && shipped == 0 {
		if err := s.save(); err != nil {
			errs = append(errs, err)
		}
	}
	s.index(ctx) // index.go
	if err := ctx.Err(); err != nil && len(errs) == 0 && pending > 0 {
		errs = append(errs, err)
	}
	s.setPending(pending)
	return shipped, errors.Join(errs...)
}

// ship uploads block m unless it is complete in the bucket, and records it.
func (s *Shipper) ship(ctx context.Context, m *block.Meta) error {
	id := m.ULID.String()
	um, err := s.inBucket(ctx, m)
	if err != nil {
		return err
	}
	ok := um != nil
	if ok {
		s.log.Info("block already in the bucket; recording it as shipped", "block", id)
	} else {
		start := s.now()
		if um, err = block.Upload(ctx, s.bkt, filepath.Join(s.dir, id), s.ext); err != nil {
			return fmt.Errorf("uploading block %s: %w", id, err)
		}
		s.log.Info("uploaded block", "block", id, "min_time", m.MinTime, "max_time", m.MaxTime,
			"series", m.Stats.NumSeries, "duration", s.now().Sub(start))
	}
	now := s.now()
	s.mu.Lock()
	s.shipped[m.ULID] = now
	s.mu.Unlock()
	s.unindexed[m.ULID] = bucketindex.BlockOf(um, now) // um: with what Upload added
	if !ok {
		s.m.uploaded(s.tenant, float64(now.UnixNano())/1e9)
	}
	return nil
}

// inBucket returns block m's meta.json from the bucket if the block is
// complete there (its meta.json exists and reads), else nil. A meta.json
// that does not read (truncated by a crash of a non-atomic writer) means
// upload again, which overwrites it. Exists comes first because a
// not-found Get would count as a failed operation in the bucket's metrics,
// and most blocks asked about are new.
func (s *Shipper) inBucket(ctx context.Context, m *block.Meta) (*block.Meta, error) {
	name := path.Join(m.ULID.String(), block.MetaFilename)
	ok, err := s.bkt.Exists(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("checking %s in the bucket: %w", name, err)
	}
	if !ok {
		return nil, nil
	}
	um, err := block.ReadMeta(ctx, s.bkt, m.ULID)
	if err != nil {
		return nil, nil
	}
	return um, nil
}

// localBlocks reads the meta.json of every block directory, ordered by
// MinTime, and returns the ids of all block directories found (readable
// or not) and the errors of the unreadable ones. err is that of listing
// the directory.
func (s *Shipper) localBlocks() (metas []*block.Meta, present map[ulid.ULID]bool, blockErrs []error, err error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listing blocks of tenant %q: %w", s.tenant, err)
	}
	present = map[ulid.ULID]bool{}
	for _, e := range entries {
		// TSDB writes a block under <ULID>.tmp-for-creation and renames it
		// when complete; such names are not ULIDs and are skipped.
		id, ok := block.ParseDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		present[id] = true
		m, err := block.ReadMetaFile(filepath.Join(s.dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			blockErrs = append(blockErrs, fmt.Errorf("block %s of tenant %q: %w", id, s.tenant, err))
			continue
		}
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b *block.Meta) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		return a.ULID.Compare(b.ULID)
	})
	return metas, present, blockErrs, nil
}

// forget drops the records of blocks no longer on disk (deleted by the
// TSDB), so the state file lists only local blocks.
func (s *Shipper) forget(present map[ulid.ULID]bool) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.shipped {
		if !present[id] {
			delete(s.shipped, id)
			delete(s.unindexed, id) // long indexed by the compactor
			changed = true
		}
	}
	return changed
}

func (s *Shipper) setPending(n int) {
	s.m.addPending(n - s.pending)
	s.pending = n
}

// Close takes the Shipper's pending blocks out of the pending gauge; call
// it when the tenant's TSDB closes. It does not wait for a Sync.
func (s *Shipper) Close() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.setPending(0)
}

// BlocksToDelete is the TSDB's Options.BlocksToDelete for this tenant: of
// the blocks the TSDB proposes (all its loaded blocks), a block may go once
// it is shipped, it was uploaded at least retain ago, and its newest sample
// is at least retain old. A block not shipped is never deleted, whatever
// its age: TSDB's own time and size retention do not apply.
//
// Both clocks count: upload time makes sure the compactor has indexed the
// block and store-gateways loaded it before the ingester stops serving it
// (this matters for a block of old samples, shipped just now); the block's
// max time makes sure queriers, which ask ingesters for the last
// -querier.query-ingesters-within, no longer need it from here (this
// matters for samples ahead of the wall clock). For a block cut from the
// head in the normal course, upload time is the later of the two.
//
// The function runs under the TSDB's compaction lock and touches only the
// Shipper's in-memory records.
func (s *Shipper) BlocksToDelete(retain time.Duration) tsdb.BlocksToDeleteFunc {
	return func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
		deadline := s.now().Add(-retain)
		del := map[ulid.ULID]struct{}{}
		for _, b := range blocks {
			m := b.Meta()
			at, ok := s.Shipped(m.ULID)
			if ok && !at.After(deadline) && m.MaxTime <= deadline.UnixMilli() {
				del[m.ULID] = struct{}{}
			}
		}
		return del
	}
}
