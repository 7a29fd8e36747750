package storegateway

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/ring"
)

// labelsReference is what Prometheus' block querier answers for label
// names (name == "") or the values of name, over the blocks in dirs.
func labelsReference(t testing.TB, dirs []string, name string, ms []*labels.Matcher) []string {
	t.Helper()
	var out []string
	for _, dir := range dirs {
		b, err := tsdb.OpenBlock(nil, dir, nil, nil)
		require.NoError(t, err)
		q, err := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
		require.NoError(t, err)
		var vals []string
		if name == "" {
			vals, _, err = q.LabelNames(context.Background(), nil, ms...)
		} else {
			vals, _, err = q.LabelValues(context.Background(), name, nil, ms...)
		}
		require.NoError(t, err)
		for _, v := range vals {
			out = append(out, strings.Clone(v)) // they alias the block's mmapped index
		}
		require.NoError(t, q.Close())
		require.NoError(t, b.Close())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestLabelNamesAndValues(t *testing.T) {
	f := newFixture(t, "t1")
	h := newHarness(t, f.bkt, testConfig(t))
	ctx := context.Background()
	cases := append([]struct {
		name string
		ms   []*labels.Matcher
	}{{"no matchers", nil}}, seriesCases...)
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			names, err := h.client.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()})
			require.NoError(t, err)
			require.Equal(t, labelsReference(t, f.dirs, "", sc.ms), nilIfEmpty(names.GetNames()))
			require.ElementsMatch(t, f.ids(), names.GetQueriedBlocks())
			for _, ln := range []string{"__name__", "job", "env", "i", "nonexistent"} {
				vals, err := h.client.LabelValues(ctx, &storepb.LabelValuesRequest{Tenant: "t1", Name: ln, StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()})
				require.NoError(t, err)
				require.Equal(t, labelsReference(t, f.dirs, ln, sc.ms), nilIfEmpty(vals.GetValues()), ln)
			}
		})
	}
	vals, err := h.client.LabelValues(ctx, &storepb.LabelValuesRequest{Tenant: "t1", Name: "i", BlockIds: f.ids(), Limit: 3})
	require.NoError(t, err)
	require.Equal(t, []string{"00000", "00001", "00002"}, vals.GetValues())
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// With caches far smaller than the data, entries are evicted, the caches
// stay within their bounds and the answers do not change.
func TestCachesBounded(t *testing.T) {
	f := newFixture(t, "t1")
	cfg := testConfig(t)
	cfg.ChunksCacheMaxBytes, cfg.PostingsCacheMaxBytes, cfg.SeriesCacheMaxBytes = 16<<10, 16<<10, 16<<10
	h := newHarness(t, f.bkt, cfg)
	ctx := context.Background()
	for _, sc := range seriesCases {
		for pass := range 2 { // the second finds some of the first's entries
			want := reference(t, f.dirs, 0, 6*hour, sc.ms, false)
			got, _, err := callSeries(ctx, h.client, &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, sc.ms), BlockIds: f.ids()})
			require.NoError(t, err)
			require.Equal(t, want, sortChunks(got), "pass %d %s", pass, sc.name)
		}
	}
	for _, c := range []struct {
		name string
		max  int64
	}{{"chunks", cfg.ChunksCacheMaxBytes}, {"postings", cfg.PostingsCacheMaxBytes}, {"series", cfg.SeriesCacheMaxBytes}} {
		require.Positive(t, h.counter(t, "strata_storegateway_cache_evictions_total", c.name), c.name)
		require.Positive(t, h.counter(t, "strata_storegateway_cache_hits_total", c.name), c.name)
		require.Positive(t, h.counter(t, "strata_storegateway_cache_bytes", c.name), c.name)
		require.LessOrEqual(t, h.counter(t, "strata_storegateway_cache_bytes", c.name), float64(c.max), c.name)
	}
}

func TestLRU(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry()).chunksCache
	c := newLRU[int, string](3*(lruEntryOverhead+10), m)
	for i := range 3 {
		c.add(i, "v", 10)
	}
	_, ok := c.get(0) // 0 is now the most recent
	require.True(t, ok)
	c.add(3, "v", 10) // evicts 1, the least recent
	for k, want := range map[int]bool{0: true, 1: false, 2: true, 3: true} {
		_, ok := c.get(k)
		require.Equal(t, want, ok, k)
	}
	c.add(4, "huge", 1<<20) // larger than the cache: not cached, nothing evicted
	_, ok = c.get(4)
	require.False(t, ok)
	require.Len(t, c.items, 3)
	c.add(0, "v", 10+lruEntryOverhead+10) // grows: evicts the least recent
	require.LessOrEqual(t, c.size, c.max)

	off := newLRU[int, string](0, m) // disabled
	off.add(1, "v", 1)
	_, ok = off.get(1)
	require.False(t, ok)
}

// A block's index is downloaded on its first query, closed after the idle
// timeout with its local file kept, and reopened from that file.
func TestLazyLoadAndIdleUnload(t *testing.T) {
	f := newFixture(t, "t1")
	cfg := testConfig(t)
	cfg.IdleTimeout = time.Hour
	h := newHarness(t, f.bkt, cfg)
	ctx := context.Background()
	id := f.metas[2].ULID
	file := filepath.Join(cfg.DataDir, "t1", id.String(), headerFilename)
	require.NoFileExists(t, file, "nothing loads before a query")
	require.Zero(t, h.counter(t, "strata_storegateway_blocks_loaded"))

	req := &storepb.SeriesRequest{Tenant: "t1", StartMs: 0, EndMs: 6 * hour, Matchers: protoMatchers(t, seriesCases[0].ms), BlockIds: []string{id.String()}}
	want, _, err := callSeries(ctx, h.client, req)
	require.NoError(t, err)
	require.FileExists(t, file)
	require.Equal(t, 1.0, h.counter(t, "strata_storegateway_blocks_loaded"))

	h.clock.Advance(59 * time.Minute)
	h.g.closeIdle()
	require.Equal(t, 1.0, h.counter(t, "strata_storegateway_blocks_loaded"), "not idle long enough")
	h.clock.Advance(2 * time.Minute)
	h.g.closeIdle()
	require.Zero(t, h.counter(t, "strata_storegateway_blocks_loaded"))
	require.Equal(t, 1.0, h.counter(t, "strata_storegateway_block_unloads_total"))
	require.FileExists(t, file)

	got, _, err := callSeries(ctx, h.client, req)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 2.0, h.counter(t, "strata_storegateway_block_loads_total"))
	require.Equal(t, 1.0, h.counter(t, "strata_storegateway_index_header_builds_total"), "reopened from the local file")
}

// Two store-gateways with RF 1 share the blocks; each keeps the local
// files of its own and deletes those of blocks it served but does not own.
func TestSyncOwnership(t *testing.T) {
	f := newFixture(t, "t1")
	store := ring.NewMemStore()
	ctx := context.Background()
	for i, id := range []string{"sg-1", "sg-2"} {
		lc := ring.NewLifecycler(ring.LifecyclerConfig{NumTokens: 64, HeartbeatPeriod: time.Second}, ring.LifecyclerDeps{
			ID: id, Addr: "127.0.0.1:" + string(rune('1'+i)), Store: store, Log: discard(), Reg: prometheus.NewRegistry(),
		})
		require.NoError(t, lc.Register(ctx))
		require.NoError(t, lc.SetState(ctx, ring.Active))
	}
	rcfg := ring.Config{ReplicationFactor: 1, HeartbeatTimeout: 0}
	sharder := ring.NewBlockSharder(ring.New(rcfg, store, time.Now), rcfg, time.Now)
	lister := bucketindex.NewBucketLister(f.bkt)
	owned := map[string]bool{}
	for _, self := range []string{"sg-1", "sg-2"} {
		cfg := testConfig(t)
		g, err := New(cfg, Deps{Bucket: f.bkt, Blocks: lister, Tenants: lister.Tenants, Sharder: sharder, InstanceID: self, Log: discard(), Reg: prometheus.NewRegistry()})
		require.NoError(t, err)
		// Serve every block once, owned or not.
		_, err = g.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: "t1", BlockIds: f.ids()})
		require.NoError(t, err)
		g.close() // unload, as the idle timeout would
		require.NoError(t, g.sync(ctx))
		snap := sharder.Snapshot()
		for _, m := range f.metas {
			mine := snap.Owns(self, "t1", m.ULID)
			_, err := os.Stat(filepath.Join(cfg.DataDir, "t1", m.ULID.String(), headerFilename))
			require.Equal(t, mine, err == nil, "%s block %s", self, m.ULID)
			if mine {
				require.False(t, owned[m.ULID.String()], "owned twice with RF 1")
				owned[m.ULID.String()] = true
			}
		}
	}
	require.Len(t, owned, len(f.metas), "every block has an owner")
}

// Run syncs once before it is ready, and stops cleanly.
func TestRun(t *testing.T) {
	f := newFixture(t, "t1")
	h := newHarness(t, f.bkt, testConfig(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.g.Run(ctx) }()
	require.Error(t, h.g.CheckReady(ctx))
	require.Eventually(t, func() bool { return h.g.CheckReady(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, float64(len(f.metas)), h.counter(t, "strata_storegateway_blocks_owned"))
	cancel()
	require.NoError(t, <-done)
}

// With a ring, the first sync waits until this instance is in it, so that
// a start does not take every block for another's.
func TestRunWaitsForRing(t *testing.T) {
	f := newFixture(t, "t1")
	store := ring.NewMemStore()
	rcfg := ring.Config{ReplicationFactor: 1}
	lister := bucketindex.NewBucketLister(f.bkt)
	reg := prometheus.NewRegistry()
	g, err := New(testConfig(t), Deps{
		Bucket: f.bkt, Blocks: lister, Tenants: lister.Tenants, InstanceID: "sg-1", Log: discard(), Reg: reg,
		Sharder: ring.NewBlockSharder(ring.New(rcfg, store, time.Now), rcfg, time.Now),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	require.ErrorIs(t, g.sync(ctx), errNotInRing)
	require.Error(t, g.CheckReady(ctx))

	lc := ring.NewLifecycler(ring.LifecyclerConfig{NumTokens: 8, HeartbeatPeriod: time.Second}, ring.LifecyclerDeps{
		ID: "sg-1", Addr: "127.0.0.1:1", Store: store, Log: discard(), Reg: prometheus.NewRegistry(),
	})
	require.NoError(t, lc.Register(ctx)) // JOINING is enough to own blocks
	require.Eventually(t, func() bool { return g.CheckReady(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, float64(len(f.metas)), metricValue(t, reg, "strata_storegateway_blocks_owned"))
	cancel()
	require.NoError(t, <-done)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"rf", func(c *Config) { c.ReplicationFactor = 0 }, "-store-gateway.replication-factor"},
		{"sync", func(c *Config) { c.SyncInterval = 0 }, "-store-gateway.sync-interval"},
		{"chunks cache", func(c *Config) { c.ChunksCacheMaxBytes = -1 }, "-store-gateway.chunks-cache-max-bytes"},
		{"postings cache", func(c *Config) { c.PostingsCacheMaxBytes = -1 }, "-store-gateway.postings-cache-max-bytes"},
		{"series cache", func(c *Config) { c.SeriesCacheMaxBytes = -1 }, "-store-gateway.series-cache-max-bytes"},
		{"idle", func(c *Config) { c.IdleTimeout = -time.Second }, "-store-gateway.lazy-load-idle-timeout"},
		{"concurrency", func(c *Config) { c.Concurrency = 0 }, "-store-gateway.concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}
