package ingester

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

func TestIngestRate(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	at := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }
	type step struct {
		at  float64 // seconds after base
		add int     // samples added then; 0 reads
		// want is the rate read at this step (when add is 0).
		want float64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nothing counted", []step{{at: 100, want: 0}}},
		{"before the first tick ends", []step{{at: 0, add: 150}, {at: 14.9, want: 0}}},
		{"first tick sets the rate", []step{{at: 0, add: 150}, {at: 15, want: 10}}},
		{"adds within a tick sum", []step{{at: 0, add: 100}, {at: 10, add: 50}, {at: 16, want: 10}}},
		{"second tick moves a fifth of the way", []step{{at: 0, add: 150}, {at: 15, add: 300}, {at: 30, want: 10 + 0.2*(20-10)}}},
		{"idle ticks decay", []step{{at: 0, add: 150}, {at: 60, want: 10 * 0.8 * 0.8 * 0.8}}},
		{"steady rate stays", []step{{at: 0, add: 150}, {at: 15, add: 150}, {at: 30, add: 150}, {at: 45, want: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ingestRates
			for _, s := range tc.steps {
				if s.add > 0 {
					r.add("a", s.add, at(s.at))
					continue
				}
				require.InDelta(t, s.want, r.rate("a", at(s.at)), 1e-9)
			}
			require.Zero(t, r.rate("other", at(1000)), "tenants are counted apart")
		})
	}
}

func TestTSDBStatus(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("tenant-a",
		floats(lbls("__name__", "up", "job", "api", "instance", "1"), float64(t0), 1, float64(t0+15000), 1),
		floats(lbls("__name__", "up", "job", "api", "instance", "2"), float64(t0), 1),
		floats(lbls("__name__", "requests_total", "job", "api"), float64(t0+30000), 5),
	)
	h.mustPush("tenant-b", floats(lbls("__name__", "secret_b", "team", "b"), float64(t0), 1))
	ctx := context.Background()

	got, err := h.client.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: "tenant-a"})
	require.NoError(t, err)
	// The same figures as the head's own Stats, which Prometheus serves.
	h.ing.mu.RLock()
	db := h.ing.dbs["tenant-a"].db
	h.ing.mu.RUnlock()
	want := db.Head().Stats(labels.MetricName, 10)
	require.Equal(t, uint64(3), got.GetNumSeries())
	require.Equal(t, want.NumSeries, got.GetNumSeries())
	require.Equal(t, int64(want.IndexPostingStats.NumLabelPairs), got.GetNumLabelPairs())
	require.Equal(t, t0, got.GetMinTimeMs())
	require.Equal(t, t0+30000, got.GetMaxTimeMs())
	require.Equal(t, int64(3), got.GetChunkCount())
	require.Equal(t, toTSDBStats(want.IndexPostingStats.CardinalityMetricsStats), got.GetSeriesCountByMetricName())
	require.Equal(t, []*ingesterpb.TSDBStat{{Name: "up", Value: 2}, {Name: "requests_total", Value: 1}}, got.GetSeriesCountByMetricName())
	require.Len(t, got.GetLabelValueCountByLabelName(), 3)
	require.Len(t, got.GetMemoryInBytesByLabelName(), 3)
	require.Len(t, got.GetSeriesCountByLabelValuePair(), 5)

	// Isolation: B sees its own metric only.
	gotB, err := h.client.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: "tenant-b", Limit: 100})
	require.NoError(t, err)
	require.Equal(t, []*ingesterpb.TSDBStat{{Name: "secret_b", Value: 1}}, gotB.GetSeriesCountByMetricName())
	require.Equal(t, uint64(1), gotB.GetNumSeries())

	// A tenant without a TSDB: an empty head.
	none, err := h.client.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: "tenant-c"})
	require.NoError(t, err)
	require.Zero(t, none.GetNumSeries())
	require.Equal(t, int64(math.MaxInt64), none.GetMinTimeMs())
	require.Equal(t, int64(math.MinInt64), none.GetMaxTimeMs())

	// The limit cuts every list.
	one, err := h.client.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: "tenant-a", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []*ingesterpb.TSDBStat{{Name: "up", Value: 2}}, one.GetSeriesCountByMetricName())
	require.Len(t, one.GetSeriesCountByLabelValuePair(), 1)

	for _, limit := range []int32{-1, maxTSDBStatusLimit + 1} {
		_, err := h.client.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: "tenant-a", Limit: limit})
		code, details := errDetails(t, err)
		require.Equal(t, codes.InvalidArgument, code)
		require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, details.GetClass())
	}
}

func TestUserStats(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("tenant-a",
		floats(lbls("__name__", "up", "instance", "1"), float64(t0), 1, float64(t0+15000), 1),
		floats(lbls("__name__", "up", "instance", "2"), float64(t0), 1),
	)
	ctx := context.Background()
	got, err := h.client.UserStats(ctx, &ingesterpb.UserStatsRequest{Tenant: "tenant-a"})
	require.NoError(t, err)
	require.Equal(t, uint64(2), got.GetNumSeries())
	require.Equal(t, got.GetIngestionRate(), got.GetApiIngestionRate())
	require.Zero(t, got.GetRuleIngestionRate())
	// Push counted its 3 appended samples: one tick later they are the rate.
	require.InDelta(t, 3/rateTick.Seconds(), h.ing.rates.rate("tenant-a", time.Now().Add(rateTick)), 1e-9)

	none, err := h.client.UserStats(ctx, &ingesterpb.UserStatsRequest{Tenant: "tenant-b"})
	require.NoError(t, err)
	require.Zero(t, none.GetNumSeries())
	require.Zero(t, none.GetIngestionRate())
}

func BenchmarkIngestRateAdd(b *testing.B) {
	var r ingestRates
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r.add("tenant", 2000, now)
	}
}
