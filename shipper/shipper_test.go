package shipper

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/block"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const tenantID = "tenant-1"

func TestSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b1 := writeBlock(t, dir, 0, 3)
	b2 := writeBlock(t, dir, 2*time.Hour.Milliseconds(), 3)
	bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	clock := newClock(time.Unix(1_000_000, 0))
	s := newShipper(t, dir, bkt, m, clock)

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for _, id := range []ulid.ULID{b1, b2} {
		meta, err := block.ReadMeta(ctx, objstore.NewPrefixedBucket(bkt, tenantID), id)
		require.NoError(t, err)
		require.Equal(t, block.Ext{Tenant: tenantID, Source: block.SourceIngester, Ingester: "ing-1", Files: meta.Strata.Files}, meta.Strata)
		at, ok := s.Shipped(id)
		require.True(t, ok)
		require.Equal(t, clock.Now(), at)
	}
	require.Equal(t, 2.0, testutil.ToFloat64(m.uploads.WithLabelValues(tenantID)))
	require.Equal(t, 0.0, testutil.ToFloat64(m.pending))
	require.Equal(t, float64(clock.Now().Unix()), testutil.ToFloat64(m.lastSuccess))

	uploads := bkt.uploads()
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing new")
	require.Equal(t, uploads, bkt.uploads(), "a shipped block is not uploaded again")

	// After a restart the state file says what was shipped.
	s2 := newShipper(t, dir, bkt, m, clock)
	_, ok := s2.Shipped(b1)
	require.True(t, ok)
	n, err = s2.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, uploads, bkt.uploads())

	// A block the TSDB deleted leaves the state file.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, b1.String())))
	_, err = s2.Sync(ctx)
	require.NoError(t, err)
	_, ok = newShipper(t, dir, bkt, m, clock).Shipped(b1)
	require.False(t, ok)
}

// An upload that fails half way leaves nothing visible; the next Sync
// uploads the block again, and exactly one complete block is in the bucket.
func TestSyncRetriesFailedUpload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failOn string // object name suffix whose first upload fails
		// truncated leaves the first bytes of the failed object in the
		// bucket, as objstore's filesystem bucket (written in place) did
		// before bucket.New made its uploads atomic; object stores never
		// publish a failed upload.
		truncated bool
	}{
		{"first chunk file", "chunks/000001", false},
		{"index", "/index", false},
		{"meta.json", "/meta.json", false},
		{"index truncated", "/index", true},
		{"meta.json truncated", "/meta.json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			id := writeBlock(t, dir, 0, 5)
			mem := objstore.NewInMemBucket()
			bkt := &countingBucket{Bucket: mem, failOnce: tc.failOn, truncate: tc.truncated}
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg, nil)
			s := newShipper(t, dir, bkt, m, newClock(time.Unix(1_000_000, 0)))
			tb := objstore.NewPrefixedBucket(mem, tenantID)

			n, err := s.Sync(ctx)
			require.ErrorContains(t, err, "injected failure")
			require.Zero(t, n)
			_, err = block.ReadMeta(ctx, tb, id)
			if tc.truncated && tc.failOn == "/meta.json" {
				require.ErrorContains(t, err, "decoding block meta", "a truncated meta.json does not read as a block")
			} else {
				require.True(t, block.IsNotFound(err), "a partial block is invisible: %v", err)
			}
			_, ok := s.Shipped(id)
			require.False(t, ok)
			require.Equal(t, 1.0, testutil.ToFloat64(m.failures.WithLabelValues(tenantID)))
			require.Equal(t, 1.0, testutil.ToFloat64(m.pending))
			require.Equal(t, 0.0, testutil.ToFloat64(m.uploads.WithLabelValues(tenantID)))

			n, err = s.Sync(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			meta, err := block.ReadMeta(ctx, tb, id)
			require.NoError(t, err)
			require.NoError(t, block.Download(ctx, tb, meta, filepath.Join(t.TempDir(), id.String())), "complete after the retry")
			require.ElementsMatch(t, []string{tenantID + "/" + id.String() + "/", tenantID + "/bucket-index.json.gz"}, list(t, mem, tenantID+"/"), "exactly one block, and the index")
			require.Equal(t, 0.0, testutil.ToFloat64(m.pending))
			require.Equal(t, 1.0, testutil.ToFloat64(m.uploads.WithLabelValues(tenantID)))
		})
	}
}

// A block already complete in the bucket (the state file was lost, or the
// process died between upload and record) is recorded, not uploaded.
func TestSyncRecordsBlocksFoundInBucket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state string // content of the state file; "" removes it
	}{
		{"state file lost", ""},
		{"state file corrupt", "{not json"},
		{"unknown version", `{"version": 99, "shipped": []}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			id := writeBlock(t, dir, 0, 2)
			bkt := &countingBucket{Bucket: objstore.NewInMemBucket()}
			_, err := newShipper(t, dir, bkt, nil, nil).Sync(ctx)
			require.NoError(t, err)
			stateFile := filepath.Join(dir, StateFilename)
			if tc.state == "" {
				require.NoError(t, os.Remove(stateFile))
			} else {
				require.NoError(t, os.WriteFile(stateFile, []byte(tc.state), 0o644))
			}

			uploads := bkt.uploads()
			s := newShipper(t, dir, bkt, nil, nil)
			_, ok := s.Shipped(id)
			require.False(t, ok)
			n, err := s.Sync(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Equal(t, uploads, bkt.uploads(), "found in the bucket, not uploaded again")
			_, ok = newShipper(t, dir, bkt, nil, nil).Shipped(id)
			require.True(t, ok, "recorded in a new state file")
		})
	}
}

func TestBlocksToDelete(t *testing.T) {
	const retain = 13 * time.Hour
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old := now.Add(-2 * retain)
	for _, tc := range []struct {
		name     string
		maxTime  time.Time // of the block's data
		shipped  bool
		uploaded time.Time
		want     bool
	}{
		{"not shipped, ancient", old, false, time.Time{}, false},
		{"shipped long ago, old data", old, true, old.Add(time.Hour), true},
		{"shipped exactly retain ago", now.Add(-retain), true, now.Add(-retain), true},
		{"shipped recently, old data (backfill)", old, true, now.Add(-time.Hour), false},
		{"shipped long ago, data ahead of the clock", now.Add(time.Hour), true, old, false},
		{"shipped long ago, recent data", now.Add(-time.Hour), true, old, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			maxMs := tc.maxTime.UnixMilli()
			id := writeBlock(t, dir, maxMs-10*15000, 1) // block max time = last sample + 1ms
			b, err := tsdb.OpenBlock(nil, filepath.Join(dir, id.String()), nil, nil)
			require.NoError(t, err)
			defer b.Close()
			require.Equal(t, maxMs-15000+1, b.Meta().MaxTime)

			clock := newClock(tc.uploaded)
			s := newShipper(t, dir, objstore.NewInMemBucket(), nil, clock)
			if tc.shipped {
				_, err := s.Sync(context.Background())
				require.NoError(t, err)
			}
			clock.Set(now)
			got := s.BlocksToDelete(retain)([]*tsdb.Block{b})
			_, deleted := got[id]
			require.Equal(t, tc.want, deleted)
		})
	}
}

// Wired into a real TSDB with a retention far shorter than the data's
// age, the TSDB deletes a block only once it is shipped and old enough.
func TestBlocksToDeleteInTSDB(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const rng = int64(2 * time.Hour / time.Millisecond)
	clock := newClock(time.UnixMilli(10 * rng))
	s := newShipper(t, dir, objstore.NewInMemBucket(), nil, clock)
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 1 // TSDB's own retention would delete everything at once
	opts.MinBlockDuration, opts.MaxBlockDuration = rng, rng
	opts.BlocksToDelete = s.BlocksToDelete(time.Hour)
	db, err := tsdb.Open(dir, promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	defer db.Close()
	db.DisableCompactions()

	app := db.Appender(ctx)
	for ts := int64(0); ts < 3*rng; ts += 60_000 {
		_, err := app.Append(0, labels.FromStrings("__name__", "up"), ts, 1)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	cut := func(mint int64) {
		t.Helper()
		require.NoError(t, db.CompactHead(tsdb.NewRangeHead(db.Head(), mint, mint+rng-1)))
	}
	cut(0) // block [0, 2h); the reload after it offers the block for deletion
	require.Len(t, db.Blocks(), 1, "not shipped: kept despite the retention")
	first := db.Blocks()[0].Meta().ULID

	n, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	cut(rng) // the reload offers the first block again: shipped, but just now
	require.Len(t, db.Blocks(), 2, "shipped less than an hour ago: kept")

	clock.Set(clock.Now().Add(time.Hour))
	cut(2 * rng)
	var ids []ulid.ULID
	for _, b := range db.Blocks() {
		ids = append(ids, b.Meta().ULID)
	}
	require.Len(t, ids, 2, "the shipped block went, the two unshipped ones stay")
	require.NotContains(t, ids, first)
	_, err = os.Stat(filepath.Join(dir, first.String()))
	require.True(t, os.IsNotExist(err), "deleted from disk")
}

func newShipper(t *testing.T, dir string, bkt objstore.Bucket, m *Metrics, clock *clock) *Shipper {
	t.Helper()
	d := Deps{Dir: dir, Bucket: bkt, Tenant: tenantID, Ingester: "ing-1", Metrics: m}
	if clock != nil {
		d.Now = clock.Now
	}
	s, err := New(d)
	require.NoError(t, err)
	return s
}

// writeBlock writes a real TSDB block into dir: n series with 10 samples
// each, 15s apart from mint.
func writeBlock(t *testing.T, dir string, mint int64, n int) ulid.ULID {
	t.Helper()
	var series []storage.Series
	for i := range n {
		var s []chunks.Sample
		for j := range 10 {
			s = append(s, sample{t: mint + int64(j)*15000, f: float64(j)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", strings.Repeat("x", i+1)), s))
	}
	bdir, err := tsdb.CreateBlock(series, dir, 2*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(t, err)
	id, ok := block.ParseDir(filepath.Base(bdir))
	require.True(t, ok)
	return id
}

func list(t *testing.T, bkt objstore.Bucket, dir string) []string {
	t.Helper()
	var names []string
	require.NoError(t, bkt.Iter(context.Background(), dir, func(name string) error {
		names = append(names, name)
		return nil
	}))
	return names
}

// countingBucket counts uploads and fails the first upload of the object
// whose name ends in failOnce; with truncate, the object's first bytes
// reach the bucket.
type countingBucket struct {
	objstore.Bucket
	failOnce string
	truncate bool

	mu     sync.Mutex
	n      int
	failed bool
}

func (b *countingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.n++
	fail := b.failOnce != "" && !b.failed && strings.HasSuffix(name, b.failOnce)
	b.failed = b.failed || fail
	b.mu.Unlock()
	if fail {
		if b.truncate {
			if err := b.Bucket.Upload(ctx, name, io.LimitReader(r, 10)); err != nil {
				return err
			}
		}
		return errors.New("injected failure uploading " + path.Base(name))
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *countingBucket) uploads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }
