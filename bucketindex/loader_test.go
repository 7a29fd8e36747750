package bucketindex

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLoaderConfig() LoaderConfig {
	return LoaderConfig{UpdateInterval: 5 * time.Minute, IdleTimeout: time.Hour, MaxStalePeriod: time.Hour, IgnoreDeletionMarksDelay: time.Hour}
}

// failingGets fails every Get while on.
type failingGets struct {
	objstore.Bucket
	on bool
}

func (f *failingGets) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if f.on {
		return nil, errors.New("injected get failure")
	}
	return f.Bucket.Get(ctx, name)
}

func TestLoader(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewInMemBucket()
	bkt := &failingGets{Bucket: mem}
	clk := newClock(time.Unix(1800000000, 0))
	reg := prometheus.NewPedanticRegistry()
	l := NewLoader(testLoaderConfig(), bkt, slog.New(slog.DiscardHandler), reg, clk.Now)
	failures := func(reason string) float64 { return testutil.ToFloat64(l.failures.WithLabelValues(reason)) }
	write := func(ix *Index) {
		t.Helper()
		require.NoError(t, WriteIndex(ctx, mem, "t1", ix))
	}

	// No index yet: no blocks, no error.
	ix, err := l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks)
	clk.Add(10 * time.Hour)
	_, err = l.Index(ctx, "t1")
	require.NoError(t, err, "a missing index is never stale")

	// A written index shows after a refresh, not before.
	want := testIndex()
	want.UpdatedAt = clk.Now().Unix()
	write(want)
	ix, err = l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks, "served from memory until the next refresh")
	l.refresh(ctx, false)
	ix, err = l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, want, ix)

	// A corrupt or unreadable index on refresh: the previous one serves.
	put(t, mem, "t1/"+IndexFilename, "garbage")
	l.refresh(ctx, false)
	require.Equal(t, 1.0, failures(reasonCorrupted))
	bkt.on = true
	l.refresh(ctx, false)
	bkt.on = false
	require.Equal(t, 1.0, failures(reasonError))
	ix, err = l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, want, ix)

	// The index ages while the compactor does not rewrite it.
	clk.Add(59 * time.Minute)
	require.InDelta(t, (59 * time.Minute).Seconds(), gauge(t, reg, "strata_bucket_index_oldest_age_seconds"), 1)
	_, err = l.Index(ctx, "t1")
	require.NoError(t, err)
	clk.Add(2 * time.Minute)
	_, err = l.Index(ctx, "t1")
	require.ErrorIs(t, err, ErrIndexStale)
	require.ErrorContains(t, err, "is the compactor running?")

	// A tenant not used for the idle timeout is dropped on refresh.
	require.Equal(t, 1.0, gauge(t, reg, "strata_bucket_index_loaded_tenants"))
	clk.Add(time.Hour + time.Second)
	l.refresh(ctx, false)
	require.Equal(t, 0.0, gauge(t, reg, "strata_bucket_index_loaded_tenants"))
	require.Equal(t, 4.0, testutil.ToFloat64(l.loads), "first use and three refreshes")
}

func TestLoaderFirstLoadFails(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewInMemBucket()
	bkt := &failingGets{Bucket: mem, on: true}
	l := NewLoader(testLoaderConfig(), bkt, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), time.Now)

	_, err := l.Index(ctx, "t1")
	require.ErrorContains(t, err, "injected get failure")
	bkt.on = false
	put(t, mem, "t1/"+IndexFilename, "garbage")
	_, err = l.Index(ctx, "t1")
	require.ErrorIs(t, err, ErrIndexCorrupted, "retried at once: no good index yet")
	require.Equal(t, 1.0, testutil.ToFloat64(l.failures.WithLabelValues(reasonCorrupted)))

	ix := testIndex()
	ix.UpdatedAt = time.Now().Unix()
	require.NoError(t, WriteIndex(ctx, mem, "t1", ix))
	got, err := l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, ix, got)
}

func TestLoaderBlocksGrace(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	now := time.Unix(1800000000, 0)
	ix := testIndex()
	ix.UpdatedAt = now.Unix()
	// Block 1 marked 2h ago (dropped), block 3 marked 30m ago (still read).
	ix.DeletionMarks = []DeletionMark{{ID: testID(1), DeletionTime: now.Add(-2 * time.Hour).Unix()}, {ID: testID(3), DeletionTime: now.Add(-30 * time.Minute).Unix()}}
	require.NoError(t, WriteIndex(ctx, bkt, "t1", ix))
	l := NewLoader(testLoaderConfig(), bkt, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), func() time.Time { return now })
	bs, err := l.Blocks(ctx, "t1", math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	require.Len(t, bs, 2)
	require.Equal(t, testID(2), bs[0].ID)
	require.Equal(t, testID(3), bs[1].ID)
}

// TestLoaderRun checks the background loop picks up a new index.
func TestLoaderRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	bkt := objstore.NewInMemBucket()
	cfg := testLoaderConfig()
	cfg.UpdateInterval = 10 * time.Millisecond
	l := NewLoader(cfg, bkt, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), time.Now)
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	ix, err := l.Index(ctx, "t1")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks)
	want := testIndex()
	want.UpdatedAt = time.Now().Unix()
	require.NoError(t, WriteIndex(ctx, bkt, "t1", want))
	require.Eventually(t, func() bool {
		ix, err := l.Index(ctx, "t1")
		return err == nil && len(ix.Blocks) == 3
	}, 10*time.Second, 10*time.Millisecond)
}

func TestLoaderConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*LoaderConfig)
		wantErr string
	}{
		{"defaults", func(*LoaderConfig) {}, ""},
		{"no interval", func(c *LoaderConfig) { c.UpdateInterval = 0 }, "update-interval must be positive"},
		{"no idle", func(c *LoaderConfig) { c.IdleTimeout = 0 }, "idle-timeout must be positive"},
		{"stale under interval", func(c *LoaderConfig) { c.MaxStalePeriod = c.UpdateInterval }, "max-stale-period (5m0s) must be above"},
		{"negative grace", func(c *LoaderConfig) { c.IgnoreDeletionMarksDelay = -1 }, "ignore-deletion-marks-delay must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testLoaderConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// gauge returns the value of gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestLoaderRetriesMissingIndex: an index found missing is looked for
// again within missingRetry, long before UpdateInterval (an hour here).
func TestLoaderRetriesMissingIndex(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	bkt := objstore.NewInMemBucket()
	cfg := testLoaderConfig()
	cfg.UpdateInterval = time.Hour
	l := NewLoader(cfg, bkt, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), time.Now)
	l.missingRetry = 10 * time.Millisecond
	present := testIndex()
	present.UpdatedAt = time.Now().Unix()
	ix, err := l.Index(ctx, "new")
	require.NoError(t, err)
	require.Empty(t, ix.Blocks)

	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.NoError(t, WriteIndex(ctx, bkt, "new", present))
	require.Eventually(t, func() bool {
		ix, err := l.Index(ctx, "new")
		return err == nil && len(ix.Blocks) == 3
	}, 10*time.Second, 10*time.Millisecond, "the new tenant's index is found within missingRetry")
}
