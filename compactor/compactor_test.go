package compactor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func metaSize(m *block.Meta) int64 {
	var n int64
	for _, f := range m.Strata.Files {
		n += f.Size
	}
	return n
}

// oooTail is, for the last half hour of d, a sample between every two
// scrapes: out-of-order samples that only one ingester accepted.
func oooTail(d data, from int64) data {
	tail := data{}
	for k, ss := range d {
		for _, s := range ss {
			if s.t >= from {
				tail[k] = append(tail[k], sample{s.t + 7000, s.f + 0.5})
			}
		}
	}
	return tail
}

// Three ingesters cut the same 2h block: one block remains, with every
// sample once, about a third of the bytes.
func TestVerticalCompactionOfReplicas(t *testing.T) {
	d0 := day0()
	base := genData(50, d0, d0+2*hourMs)
	withTail := union(base, oooTail(base, d0+90*time.Minute.Milliseconds()))
	for _, tc := range []struct {
		name     string
		replicas []data
		want     data
		ratio    float64 // output bytes / input bytes; 0: not checked
	}{
		{"three identical replicas", []data{base, base, base}, base, 1.0 / 3},
		{"one replica with an out-of-order tail", []data{base, withTail, base}, withTail, 0},
	} {
		for bname, newBkt := range buckets {
			t.Run(tc.name+"/"+bname, func(t *testing.T) {
				bkt := newBkt(t)
				e := newEnv(t, bkt, nil)
				var in int64
				var ids []ulid.ULID
				for i, d := range tc.replicas {
					m := upload(t, bkt, "t1", makeBlock(t, t.TempDir(), d), fmt.Sprintf("ing-%d", i))
					in += metaSize(m)
					ids = append(ids, m.ULID)
				}
				slices.SortFunc(ids, func(a, b ulid.ULID) int { return a.Compare(b) })
				e.run(true)

				live := e.live("t1")
				require.Len(t, live, 1)
				out := live[0]
				require.Equal(t, block.SourceCompactor, out.Source)
				require.Equal(t, 2, out.CompactionLevel)
				require.Equal(t, d0, out.MinTime)
				require.Equal(t, tc.want, e.read("t1", out.ID), "the union of the replicas, each sample once")
				m, err := block.ReadMeta(e.ctx, objstore.NewPrefixedBucket(bkt, "t1"), out.ID)
				require.NoError(t, err)
				require.Equal(t, ids, m.Compaction.Sources)
				require.Equal(t, "t1", m.Strata.Tenant)
				for _, id := range ids {
					require.NotNil(t, e.index("t1").DeletionMark(id), "input %s marked for deletion", id)
				}
				ratio := float64(out.SizeBytes) / float64(in)
				t.Logf("%d replicas, %d bytes -> 1 block, %d bytes (%.3f)", len(ids), in, out.SizeBytes, ratio)
				if tc.ratio > 0 {
					require.InDelta(t, tc.ratio, ratio, 0.02)
				}
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.compactions.WithLabelValues("2h")))
				require.Equal(t, 3.0, testutil.ToFloat64(e.c.m.blocksCompacted))
				require.Equal(t, float64(in), testutil.ToFloat64(e.c.m.inputBytes))
				require.Equal(t, float64(out.SizeBytes), testutil.ToFloat64(e.c.m.outputBytes))
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.runsCompleted))
				require.NoDirExists(t, path.Join(e.c.cfg.DataDir, "t1", fmt.Sprintf("%d-%d", d0, d0+2*hourMs)), "work directory removed")
			})
		}
	}
}

// The same inputs, listed in any order, give the same block, byte for byte.
func TestCompactionDeterministic(t *testing.T) {
	d0 := day0()
	base := genData(20, d0, d0+2*hourMs)
	dirs := []string{
		makeBlock(t, t.TempDir(), base),
		makeBlock(t, t.TempDir(), union(base, oooTail(base, d0+hourMs))),
		makeBlock(t, t.TempDir(), base),
	}
	bkt := objstore.NewInMemBucket()
	for i, dir := range dirs {
		upload(t, bkt, "a", dir, fmt.Sprint(i))
		upload(t, bkt, "b", dirs[len(dirs)-1-i], fmt.Sprint(i))
	}
	e := newEnv(t, bkt, nil)
	e.run(true)
	a, b := e.live("a"), e.live("b")
	require.Len(t, a, 1)
	require.Len(t, b, 1)
	require.NotEqual(t, a[0].ID, b[0].ID)
	for _, f := range []string{block.IndexFilename, "chunks/000001"} {
		require.Equal(t, bkt.Objects()[path.Join("a", a[0].ID.String(), f)], bkt.Objects()[path.Join("b", b[0].ID.String(), f)], f)
	}
}

// Twelve 2h blocks become two 12h blocks once each half day is complete,
// then one 24h block.
func TestHorizontalCompactionOverRuns(t *testing.T) {
	for bname, newBkt := range buckets {
		t.Run(bname, func(t *testing.T) {
			d0 := day0()
			bkt := newBkt(t)
			e := newEnv(t, bkt, nil)
			var all []data
			for i := range int64(12) {
				d := genData(10, d0+i*2*hourMs, d0+(i+1)*2*hourMs)
				all = append(all, d)
				upload(t, bkt, "t1", makeBlock(t, t.TempDir(), d), "ing-1")
			}
			spans := func() [][2]int64 {
				var out [][2]int64
				for _, b := range e.live("t1") {
					out = append(out, [2]int64{(b.MinTime - d0) / hourMs, (b.MaxTime - d0 + hourMs - 1) / hourMs})
				}
				return out
			}

			// 12:00 + 1h59m: the first half day is still receiving blocks.
			e.clk.Set(time.UnixMilli(d0 + 14*hourMs - 60000))
			e.run(true)
			require.Len(t, spans(), 12)
			// 14:00: it is complete.
			e.clk.Set(time.UnixMilli(d0 + 14*hourMs))
			e.run(true)
			require.Equal(t, [][2]int64{{0, 12}, {12, 14}, {14, 16}, {16, 18}, {18, 20}, {20, 22}, {22, 24}}, spans())
			// The next day, 02:00: the second half and then the whole day.
			e.clk.Set(time.UnixMilli(d0 + 26*hourMs))
			e.run(true)
			require.Equal(t, [][2]int64{{0, 24}}, spans())

			out := e.live("t1")[0]
			require.Equal(t, union(all...), e.read("t1", out.ID))
			require.Equal(t, 3, out.CompactionLevel, "ingester blocks (1) -> 12h (2) -> 24h (3)")
			require.Equal(t, 2.0, testutil.ToFloat64(e.c.m.compactions.WithLabelValues("12h")))
			require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.compactions.WithLabelValues("24h")))
			require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.compactions.WithLabelValues("2h")))
		})
	}
}

// Retention marks tenant A's old blocks, deletes them after the delay, and
// leaves tenant B alone.
func TestRetention(t *testing.T) {
	for bname, newBkt := range buckets {
		t.Run(bname, func(t *testing.T) {
			d0 := day0()
			bkt := newBkt(t)
			e := newEnv(t, bkt, nil)
			blocks := map[string][]*block.Meta{}
			for _, tenant := range []string{"a", "b"} {
				for i := range int64(2) {
					blocks[tenant] = append(blocks[tenant], upload(t, bkt, tenant, makeBlock(t, t.TempDir(), genData(5, d0+i*2*hourMs, d0+(i+1)*2*hourMs)), "ing-1"))
				}
			}
			// A keeps what is younger than 03:00 of day 0.
			e.retention["a"] = e.clk.Now().Sub(time.UnixMilli(d0 + 3*hourMs))
			e.run(false)
			ixA, ixB := e.index("a"), e.index("b")
			require.NotNil(t, ixA.DeletionMark(blocks["a"][0].ULID), "ends at 02:00: past retention")
			require.Nil(t, ixA.DeletionMark(blocks["a"][1].ULID), "ends at 04:00: kept")
			require.Empty(t, ixB.DeletionMarks)
			require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.markedDeletion.WithLabelValues(reasonRetention)))

			e.clk.Add(12*time.Hour + time.Second)
			e.run(false)
			require.Empty(t, objects(t, bkt, "a", blocks["a"][0].ULID), "deleted after the deletion delay")
			require.NotEmpty(t, objects(t, bkt, "a", blocks["a"][1].ULID))
			require.NotNil(t, e.index("a").DeletionMark(blocks["a"][1].ULID), "now past retention too, waits its delay")
			require.Len(t, e.index("a").Blocks, 1)
			for _, m := range blocks["b"] {
				require.NotEmpty(t, objects(t, bkt, "b", m.ULID))
			}
			require.Len(t, e.live("b"), 2)
			require.Empty(t, e.index("b").DeletionMarks)

			// Once every block of A is gone, so is its index.
			e.clk.Add(12*time.Hour + time.Second)
			e.run(false)
			_, err := bucketindex.ReadIndex(e.ctx, bkt, "a")
			require.ErrorIs(t, err, bucketindex.ErrIndexNotFound)
			require.Equal(t, 2.0, testutil.ToFloat64(e.c.m.deleted.WithLabelValues(reasonMarked)))
		})
	}
}

// Compacted blocks stay until their mark is older than the deletion delay.
func TestDeletionDelay(t *testing.T) {
	d0 := day0()
	bkt := objstore.NewInMemBucket()
	e := newEnv(t, bkt, nil)
	base := genData(5, d0, d0+2*hourMs)
	var ids []ulid.ULID
	for i := range 3 {
		ids = append(ids, upload(t, bkt, "t1", makeBlock(t, t.TempDir(), base), fmt.Sprint(i)).ULID)
	}
	e.run(true)
	require.Len(t, e.index("t1").Blocks, 4, "three marked inputs and their merge")

	e.clk.Add(12*time.Hour - time.Second)
	e.run(false)
	for _, id := range ids {
		require.NotEmpty(t, objects(t, bkt, "t1", id), "kept before the delay")
	}
	e.clk.Add(time.Second)
	e.run(false)
	for _, id := range ids {
		require.Empty(t, objects(t, bkt, "t1", id), "deleted at the delay")
	}
	ix := e.index("t1")
	require.Len(t, ix.Blocks, 1)
	require.Empty(t, ix.DeletionMarks)
	require.Equal(t, 3.0, testutil.ToFloat64(e.c.m.deleted.WithLabelValues(reasonMarked)))
}

// A partial block (upload in progress or failed) is neither indexed nor
// compacted; it is deleted once older than the partial block delay.
func TestPartialBlock(t *testing.T) {
	d0 := day0()
	bkt := objstore.NewInMemBucket()
	e := newEnv(t, bkt, nil)
	base := genData(5, d0, d0+2*hourMs)
	var metas []*block.Meta
	for i := range 3 {
		metas = append(metas, upload(t, bkt, "t1", makeBlock(t, t.TempDir(), base), fmt.Sprint(i)))
	}
	partial := metas[2].ULID
	require.NoError(t, bkt.Delete(e.ctx, path.Join("t1", partial.String(), block.MetaFilename)))
	partialObjects := objects(t, bkt, "t1", partial)

	e.run(true)
	live := e.live("t1")
	require.Len(t, live, 1)
	m, err := block.ReadMeta(e.ctx, objstore.NewPrefixedBucket(bkt, "t1"), live[0].ID)
	require.NoError(t, err)
	require.NotContains(t, m.Compaction.Sources, partial)
	require.Len(t, m.Compaction.Sources, 2)
	require.Nil(t, e.index("t1").Block(partial))
	require.Equal(t, partialObjects, objects(t, bkt, "t1", partial), "untouched")
	require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.partialBlocks), "young: an upload in progress")

	e.clk.Set(time.Now().Add(2 * time.Hour))
	e.run(false)
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.partialBlocks), "old: reported")
	require.Equal(t, partialObjects, objects(t, bkt, "t1", partial))

	e.clk.Set(time.Now().Add(25 * time.Hour))
	e.run(false)
	require.Empty(t, objects(t, bkt, "t1", partial))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.deleted.WithLabelValues(reasonPartial)))
}

// corrupt damages block id of tenant in bkt.
type corruption struct {
	name   string
	reason string
	apply  func(t *testing.T, bkt objstore.Bucket, prefix string)
}

func replaceObject(t *testing.T, bkt objstore.Bucket, name string, f func([]byte) []byte) {
	t.Helper()
	r, err := bkt.Get(context.Background(), name)
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, bkt.Upload(context.Background(), name, bytes.NewReader(f(b))))
}

func garbage(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range out {
		out[i] = byte(i*131 + 7)
	}
	return out
}

// A corrupt block is skipped, marked no-compact and counted; the other
// replicas of its range and the other ranges are compacted.
func TestCorruptBlock(t *testing.T) {
	for _, tc := range []corruption{
		{"truncated index", noCompactDownload, func(t *testing.T, bkt objstore.Bucket, p string) {
			replaceObject(t, bkt, p+"/index", func(b []byte) []byte { return b[:len(b)/2] })
		}},
		{"missing chunk segment", noCompactDownload, func(t *testing.T, bkt objstore.Bucket, p string) {
			require.NoError(t, bkt.Delete(context.Background(), p+"/chunks/000001"))
		}},
		{"garbage index", noCompactOpen, func(t *testing.T, bkt objstore.Bucket, p string) {
			replaceObject(t, bkt, p+"/index", garbage)
		}},
		{"garbage chunk segment", noCompactOpen, func(t *testing.T, bkt objstore.Bucket, p string) {
			replaceObject(t, bkt, p+"/chunks/000001", garbage)
		}},
		{"garbage chunks after the header", noCompactRead, func(t *testing.T, bkt objstore.Bucket, p string) {
			replaceObject(t, bkt, p+"/chunks/000001", func(b []byte) []byte {
				return append(b[:8:8], garbage(b[8:])...)
			})
		}},
	} {
		for bname, newBkt := range buckets {
			t.Run(tc.name+"/"+bname, func(t *testing.T) {
				d0 := day0()
				bkt := newBkt(t)
				e := newEnv(t, bkt, func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour} })
				g1, g2 := genData(10, d0, d0+2*hourMs), genData(10, d0+2*hourMs, d0+4*hourMs)
				var bad ulid.ULID
				for i := range 3 {
					m := upload(t, bkt, "t1", makeBlock(t, t.TempDir(), g1), fmt.Sprint(i))
					if i == 1 {
						bad = m.ULID
						tc.apply(t, bkt, path.Join("t1", bad.String()))
					}
				}
				for i := range 2 {
					upload(t, bkt, "t1", makeBlock(t, t.TempDir(), g2), fmt.Sprint(i))
				}

				e.run(true) // completes: a bad block is not a failed run

				nc, err := block.ReadNoCompactMark(e.ctx, objstore.NewPrefixedBucket(bkt, "t1"), bad)
				require.NoError(t, err)
				require.NotNil(t, nc, "bad block marked no-compact")
				require.Contains(t, nc.Reason, tc.reason+": ")
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.noCompact.WithLabelValues(tc.reason)))
				require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.compactionFailures))
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.runsCompleted))
				require.Equal(t, 2.0, testutil.ToFloat64(e.c.m.compactions.WithLabelValues("2h")), "both ranges compacted")

				live := e.live("t1")
				require.Len(t, live, 3)
				require.Equal(t, bad, live[slices.IndexFunc(live, func(b bucketindex.Block) bool { return b.Source == block.SourceIngester })].ID, "the bad block stays, unmarked")
				for _, b := range live {
					switch {
					case b.ID == bad:
					case b.MinTime == d0:
						require.Equal(t, g1, e.read("t1", b.ID))
					default:
						require.Equal(t, g2, e.read("t1", b.ID))
					}
				}

				// The next run leaves it alone.
				e.run(true)
				require.Equal(t, 1.0, testutil.ToFloat64(e.c.m.noCompact.WithLabelValues(tc.reason)))
				require.Len(t, e.live("t1"), 3)
			})
		}
	}
}

func TestRunHandler(t *testing.T) {
	d0 := day0()
	bkt := objstore.NewInMemBucket()
	e := newEnv(t, bkt, func(c *Config) { c.CompactionInterval, c.CleanupInterval = time.Hour, time.Hour })
	h := e.c.RunHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/compactor/run", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "not running yet")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.c.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Eventually(t, func() bool { return testutil.ToFloat64(e.c.m.runsCompleted) == 1 }, 30*time.Second, 10*time.Millisecond, "the run at start")

	base := genData(5, d0, d0+2*hourMs)
	for i := range 2 {
		upload(t, bkt, "t1", makeBlock(t, t.TempDir(), base), fmt.Sprint(i))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/compactor/run", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Len(t, e.live("t1"), 1)
	require.Equal(t, 2.0, testutil.ToFloat64(e.c.m.runsCompleted))

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/compactor/run", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

// An unreadable ingester copy of a 2h range is marked for deletion too
// when the range's other copies read fine and, by the write quorum, hold
// every acknowledged sample; otherwise it stays, no-compact only.
func TestDamagedCopyDropped(t *testing.T) {
	damage := func(t *testing.T, bkt objstore.Bucket, p string) {
		replaceObject(t, bkt, p+"/chunks/000001", func(b []byte) []byte { return append(b[:8:8], garbage(b[8:])...) })
	}
	for _, tc := range []struct {
		name     string
		rf       int
		copies   int
		bad      []int // which copies are damaged
		wantDrop bool
		wantLive int // live blocks after the run
	}{
		{"rf 2: the other copy covers", 2, 2, []int{0}, true, 1},
		{"rf 3: two good copies cover one", 3, 3, []int{1}, true, 1},
		{"rf 3: one good copy does not", 3, 2, []int{0}, false, 2},
		{"rf 3: two damaged copies are not covered", 3, 3, []int{0, 2}, false, 3},
		{"rf 2: both damaged", 2, 2, []int{0, 1}, false, 2},
		{"rf unknown: kept", 0, 2, []int{0}, false, 2},
		{"rf 1: kept", 1, 2, []int{0}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d0 := day0()
			bkt := fsBucket(t)
			e := newEnv(t, bkt, func(c *Config) { c.BlockRanges = DurationList{2 * time.Hour} })
			e.c.rf = tc.rf
			g1 := genData(10, d0, d0+2*hourMs)
			var bad []ulid.ULID
			for i := range tc.copies {
				m := upload(t, bkt, "t1", makeBlock(t, t.TempDir(), g1), fmt.Sprint("ing-", i))
				if slices.Contains(tc.bad, i) {
					bad = append(bad, m.ULID)
					damage(t, bkt, path.Join("t1", m.ULID.String()))
				}
			}

			e.run(true)

			tb := objstore.NewPrefixedBucket(bkt, "t1")
			for _, id := range bad {
				nc, err := block.ReadNoCompactMark(e.ctx, tb, id)
				require.NoError(t, err)
				require.NotNil(t, nc, "damaged block marked no-compact")
				dm, err := block.ReadDeletionMark(e.ctx, tb, id)
				require.NoError(t, err)
				require.Equal(t, tc.wantDrop, dm != nil, "damaged block marked for deletion")
			}
			want := 0.0
			if tc.wantDrop {
				want = float64(len(bad))
			}
			require.Equal(t, want, testutil.ToFloat64(e.c.m.markedDeletion.WithLabelValues(reasonDamaged)))
			require.Equal(t, float64(len(bad)), testutil.ToFloat64(e.c.m.noCompact.WithLabelValues(noCompactRead)))
			require.Equal(t, 0.0, testutil.ToFloat64(e.c.m.compactionFailures))
			live := e.live("t1")
			require.Len(t, live, tc.wantLive)
			if tc.wantDrop {
				require.Equal(t, g1, e.read("t1", live[0].ID), "every sample kept")
			}
		})
	}
}
