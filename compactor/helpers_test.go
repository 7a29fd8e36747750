package compactor

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

const (
	hourMs = int64(time.Hour / time.Millisecond)
	dayMs  = 24 * hourMs
	stepMs = 15000 // scrape interval of the test series
)

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

// data is samples by series (labels.String()).
type data map[string][]sample

// genData returns n series with a sample every stepMs in [mint, maxt):
// node_exporter-like counters (value grows by a varying amount).
func genData(n int, mint, maxt int64) data {
	d := data{}
	for i := range n {
		ls := labels.FromStrings("__name__", "node_cpu_seconds_total", "instance", fmt.Sprintf("host-%d:9100", i%50), "cpu", fmt.Sprint(i/50), "job", "node")
		var ss []sample
		v := float64(i)
		for ts := mint; ts < maxt; ts += stepMs {
			v += float64((ts/stepMs)%7) * 0.25
			ss = append(ss, sample{ts, v})
		}
		d[ls.String()] = ss
	}
	return d
}

// union merges ds: every timestamp once, sorted.
func union(ds ...data) data {
	out := data{}
	for _, d := range ds {
		for k, ss := range d {
			out[k] = append(out[k], ss...)
		}
	}
	for k, ss := range out {
		slices.SortFunc(ss, func(a, b sample) int { return int(a.t - b.t) })
		out[k] = slices.CompactFunc(ss, func(a, b sample) bool { return a.t == b.t })
	}
	return out
}

// makeBlock writes d as a TSDB block under a new directory of dir.
func makeBlock(t testing.TB, dir string, d data) string {
	t.Helper()
	var series []storage.Series
	for k, ss := range d {
		ls, err := parseLabels(k)
		require.NoError(t, err)
		cs := make([]chunks.Sample, len(ss))
		for i, s := range ss {
			cs[i] = s
		}
		series = append(series, storage.NewListSeries(ls, cs))
	}
	// The writer's head refuses samples older than half its range before
	// the newest, and series are written one after another: give it room.
	bdir, err := tsdb.CreateBlock(series, dir, 2*dayMs, promslog.NewNopLogger())
	require.NoError(t, err)
	return bdir
}

// parseLabels parses labels.String() of the test series (no commas or
// quotes in their values).
func parseLabels(s string) (labels.Labels, error) {
	var b labels.ScratchBuilder
	for _, kv := range strings.Split(strings.Trim(s, "{}"), ", ") {
		name, quoted, _ := strings.Cut(kv, "=")
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		b.Add(name, value)
	}
	b.Sort()
	return b.Labels(), nil
}

// upload puts the block in dir into tenant's prefix as an ingester's.
func upload(t testing.TB, bkt objstore.Bucket, tenant, dir, ingester string) *block.Meta {
	t.Helper()
	m, err := block.Upload(context.Background(), objstore.NewPrefixedBucket(bkt, tenant), dir, block.Ext{Tenant: tenant, Source: block.SourceIngester, Ingester: ingester})
	require.NoError(t, err)
	return m
}

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// env is a compactor over a bucket with a test clock.
type env struct {
	t         testing.TB
	ctx       context.Context
	bkt       objstore.Bucket
	clk       *clock
	reg       *prometheus.Registry
	c         *Compactor
	retention map[string]time.Duration
}

// day0 is midnight UTC three days before now: test blocks start there, so
// every range of the first two days is complete.
func day0() int64 {
	now := time.Now().UnixMilli()
	return (now/dayMs - 3) * dayMs
}

func testConfig(t testing.TB) Config {
	return Config{
		DataDir:            t.TempDir(),
		CompactionInterval: time.Hour, CleanupInterval: 15 * time.Minute,
		BlockRanges:   DurationList{2 * time.Hour, 12 * time.Hour, 24 * time.Hour},
		DeletionDelay: 12 * time.Hour, PartialBlockDeletionDelay: 24 * time.Hour,
		CompactionConcurrency: 1,
	}
}

func newEnv(t testing.TB, bkt objstore.Bucket, mod func(*Config)) *env {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	e := &env{t: t, ctx: context.Background(), bkt: bkt, clk: &clock{t: time.Now()}, reg: prometheus.NewPedanticRegistry(), retention: map[string]time.Duration{}}
	c, err := New(cfg, Deps{
		Bucket: bkt, Log: slog.New(slog.DiscardHandler), Reg: e.reg, Now: e.clk.Now,
		Retention: func(tenant string) time.Duration { return e.retention[tenant] },
	})
	require.NoError(t, err)
	e.c = c
	return e
}

// run is one compaction run (compact) or cleanup run.
func (e *env) run(compact bool) {
	e.t.Helper()
	require.NoError(e.t, e.c.runOnce(e.ctx, compact))
}

func (e *env) index(tenant string) *bucketindex.Index {
	e.t.Helper()
	ix, err := bucketindex.ReadIndex(e.ctx, e.bkt, tenant)
	require.NoError(e.t, err)
	return ix
}

// live returns the tenant's blocks without a deletion mark, by MinTime.
func (e *env) live(tenant string) []bucketindex.Block {
	e.t.Helper()
	return e.index(tenant).Within(math.MinInt64, math.MaxInt64, time.Unix(math.MaxInt32, 0))
}

// read downloads block id of tenant and returns its samples.
func (e *env) read(tenant string, id ulid.ULID) data {
	e.t.Helper()
	tbkt := objstore.NewPrefixedBucket(e.bkt, tenant)
	m, err := block.ReadMeta(e.ctx, tbkt, id)
	require.NoError(e.t, err)
	dir := filepath.Join(e.t.TempDir(), id.String())
	require.NoError(e.t, block.Download(e.ctx, tbkt, m, dir))
	return readDir(e.t, dir)
}

// readDir returns every sample of the block in dir, failing on a
// timestamp seen twice in a series.
func readDir(t testing.TB, dir string) data {
	t.Helper()
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	require.NoError(t, err)
	defer b.Close()
	q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := data{}
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		var got []sample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if n := len(got); n > 0 {
				require.Greater(t, ts, got[n-1].t, "series %s: timestamps must increase (no duplicates)", s.Labels())
			}
			got = append(got, sample{ts, v})
		}
		require.NoError(t, it.Err())
		out[s.Labels().String()] = got
	}
	require.NoError(t, ss.Err())
	return out
}

// objects returns the names of tenant's objects under block id.
func objects(t testing.TB, bkt objstore.Bucket, tenant string, id ulid.ULID) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), tenant+"/"+id.String()+"/", func(n string) error {
		out = append(out, n)
		return nil
	}, objstore.WithRecursiveIter()))
	return out
}

func fsBucket(t testing.TB) objstore.Bucket {
	t.Helper()
	b, err := filesystem.NewBucket(t.TempDir())
	require.NoError(t, err)
	return b
}

// buckets are the bucket kinds tests run over.
var buckets = map[string]func(t testing.TB) objstore.Bucket{
	"inmem":      func(testing.TB) objstore.Bucket { return objstore.NewInMemBucket() },
	"filesystem": fsBucket,
}
