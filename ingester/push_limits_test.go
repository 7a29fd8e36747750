package ingester

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// startLimited is start with per-tenant limits from a runtime config file
// (returned, for the test to rewrite) and a ring share.
func startLimited(t *testing.T, dir string, def limits.Limits, overrides string, share RingShare) (*harness, *limits.Overrides, string) {
	t.Helper()
	ovr, file := newOverrides(t, def, overrides)
	return startDeps(t, defaultConfig(t), Deps{DataDir: dir, Limits: ovr, RingShare: share}), ovr, file
}

// newOverrides returns limits with defaults def, overridden by the runtime
// config file it writes with overrides (returned, for the test to rewrite).
func newOverrides(t *testing.T, def limits.Limits, overrides string) (*limits.Overrides, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "runtime.yaml")
	require.NoError(t, os.WriteFile(file, []byte(overrides), 0o644))
	ovr, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: file, ReloadPeriod: time.Hour}, def, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, ovr.Load())
	return ovr, file
}

func limitsDefaults(t *testing.T) limits.Limits {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return l
}

// seriesOf returns n series of metric with one sample each at ts.
func seriesOf(metric string, from, n int, ts int64) []*ingesterpb.TimeSeries {
	out := make([]*ingesterpb.TimeSeries, n)
	for k := range out {
		out[k] = floats(lbls("__name__", metric, "i", fmt.Sprint(from+k)), float64(ts), float64(k))
	}
	return out
}

func TestSeriesLimits(t *testing.T) {
	def := limitsDefaults(t)
	def.MaxGlobalSeriesPerUser = 0
	for _, tc := range []struct {
		name      string
		overrides string
		share     RingShare
		// push 1: first series; push 2: more, of which some are refused.
		metric2   string
		n1, n2    int
		wantOK    int // series of push 2 stored
		wantMsg   string
		wantID    string
		reason    string
		wantTotal int
	}{
		{
			name:      "per tenant",
			overrides: "overrides:\n  a:\n    max_global_series_per_user: 5\n",
			metric2:   "up", n1: 3, n2: 4, wantOK: 2, wantTotal: 5,
			wantMsg: `tenant "a" reached its series limit: 5 series on this ingester (max_global_series_per_user=5 across the cluster); new series are refused until old ones go idle, samples of existing series are still accepted (-ingester.max-global-series-per-user, override "max_global_series_per_user")`,
			wantID:  "[strata-max-series-per-user]", reason: "per_user_series_limit",
		},
		{
			name:      "per tenant, this ingester's share",
			overrides: "overrides:\n  a:\n    max_global_series_per_user: 12\n",
			share:     func() (int, int) { return 3, 6 }, // local limit 6
			metric2:   "up", n1: 3, n2: 4, wantOK: 3, wantTotal: 6,
			wantMsg: `(max_global_series_per_user=12 across the cluster; this ingester's share is 6 = 12 × replication factor 3 / 6 ingesters)`,
			wantID:  "[strata-max-series-per-user]", reason: "per_user_series_limit",
		},
		{
			name:      "per metric",
			overrides: "overrides:\n  a:\n    max_global_series_per_metric: 4\n",
			metric2:   "up", n1: 3, n2: 3, wantOK: 1, wantTotal: 4,
			wantMsg: `tenant "a" reached its series limit for metric "up": 4 series on this ingester (max_global_series_per_metric=4 across the cluster)`,
			wantID:  "[strata-max-series-per-metric]", reason: "per_metric_series_limit",
		},
		{
			name:      "per metric, another metric is free",
			overrides: "overrides:\n  a:\n    max_global_series_per_metric: 3\n",
			metric2:   "other", n1: 3, n2: 3, wantOK: 3, wantTotal: 6,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := startLimited(t, t.TempDir(), def, tc.overrides, tc.share)
			h.mustPush("a", seriesOf("up", 0, tc.n1, t0)...)
			// Push 2 carries new series and a new sample of every old one.
			push2 := append(seriesOf(tc.metric2, tc.n1, tc.n2, t0), seriesOf("up", 0, tc.n1, t0+1000)...)
			_, err := h.push("a", push2...)
			if tc.wantMsg == "" {
				require.NoError(t, err)
			} else {
				code, det := errDetails(t, err)
				require.Equal(t, codes.InvalidArgument, code, "bad input: the distributor answers 400")
				require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
				require.Equal(t, int64(tc.n2-tc.wantOK), det.RejectedSamples)
				require.Contains(t, err.Error(), "new series refused for series {__name__=\""+tc.metric2+"\"")
				require.Contains(t, err.Error(), tc.wantMsg)
				require.Contains(t, err.Error(), tc.wantID)
				require.Equal(t, float64(tc.n2-tc.wantOK), testutil.ToFloat64(h.ing.limitMetrics.discarded.WithLabelValues("a", tc.reason)))
			}
			// The tenant's other data is intact: every old series got its
			// second sample, the accepted new series are there.
			got := h.query("a", t0, t0+1000)
			require.Len(t, got, tc.wantTotal)
			twoSamples := 0
			for _, s := range got {
				if len(s.samples) == 2 {
					twoSamples++
				}
			}
			require.Equal(t, tc.n1, twoSamples)
			// Another tenant is not limited by a's overrides.
			h.mustPush("b", seriesOf("up", 0, tc.n1+tc.n2, t0)...)
			require.Len(t, h.query("b", t0, t0), tc.n1+tc.n2)
		})
	}
}

// TestSeriesLimitOverrideReload raises a tenant's limit in the runtime
// config file: the next push creates series without a restart.
func TestSeriesLimitOverrideReload(t *testing.T) {
	def := limitsDefaults(t)
	h, ovr, file := startLimited(t, t.TempDir(), def, "overrides:\n  a:\n    max_global_series_per_user: 2\n", nil)
	_, err := h.push("a", seriesOf("up", 0, 3, t0)...)
	code, _ := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    max_global_series_per_user: 10\n"), 0o644))
	require.NoError(t, ovr.Load())
	h.mustPush("a", seriesOf("up", 0, 3, t0)...)
	require.Len(t, h.query("a", t0, t0), 3)
}

// TestSeriesLimitReplay restarts an ingester whose tenant has more series
// than its (lowered) limit: the WAL replay keeps them all, counts them,
// and the limit applies to new series only.
func TestSeriesLimitReplay(t *testing.T) {
	def := limitsDefaults(t)
	dir := t.TempDir()
	h, _, _ := startLimited(t, dir, def, "", nil)
	h.mustPush("a", seriesOf("up", 0, 5, t0)...)
	require.NoError(t, h.stop())

	h, _, _ = startLimited(t, dir, def, "overrides:\n  a:\n    max_global_series_per_user: 3\n    max_global_series_per_metric: 4\n", nil)
	require.Len(t, h.query("a", t0, t0), 5)
	h.mustPush("a", seriesOf("up", 0, 5, t0+1000)...) // existing series: accepted
	_, err := h.push("a", seriesOf("up", 5, 1, t0)...)
	require.ErrorContains(t, err, "5 series on this ingester")

	u, err := h.ing.acquire(context.Background(), "a", false)
	require.NoError(t, err)
	defer h.ing.release(u)
	total, up := u.series.seriesCount("up")
	require.Equal(t, 5, total)
	require.Equal(t, 5, up)
}

// TestOutOfOrderWindowOverride gives one tenant an out-of-order window by
// override, then another one by changing the file: the open TSDB takes it
// on the tenant's next push, without a restart.
func TestOutOfOrderWindowOverride(t *testing.T) {
	def := limitsDefaults(t)
	h, ovr, file := startLimited(t, t.TempDir(), def, "overrides:\n  a:\n    out_of_order_time_window: 10m\n", nil)
	up := lbls("__name__", "up", "job", "x")
	for _, id := range []string{"a", "b"} {
		h.mustPush(id, floats(up, float64(t0+60000), 1))
	}
	h.mustPush("a", floats(up, float64(t0), 2)) // a minute behind: in a's window
	_, err := h.push("b", floats(up, float64(t0), 2))
	code, _ := errDetails(t, err)
	require.Equal(t, codes.InvalidArgument, code)
	require.ErrorContains(t, err, `out-of-order samples are not accepted (-ingester.out-of-order-time-window=0s, override "out_of_order_time_window") [strata-sample-out-of-order]`)

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    out_of_order_time_window: 10m\n  b:\n    out_of_order_time_window: 5m\n"), 0o644))
	require.NoError(t, ovr.Load())
	h.mustPush("b", floats(up, float64(t0), 2))
	_, err = h.push("b", floats(up, float64(t0-3600000), 3))
	require.ErrorContains(t, err, `the out-of-order window is 5m0s (-ingester.out-of-order-time-window, override "out_of_order_time_window")`)
	for _, id := range []string{"a", "b"} {
		got := h.query(id, t0, t0+60000)
		require.Len(t, got, 1)
		require.Len(t, got[0].samples, 2, id)
	}
}

// TestMetadataAndExemplarOverrides changes a tenant's metadata and
// exemplar limits in the overrides file; the open TSDB follows on the next
// push.
func TestMetadataAndExemplarOverrides(t *testing.T) {
	def := limitsDefaults(t)
	h, ovr, file := startLimited(t, t.TempDir(), def, "overrides:\n  a:\n    max_metadata_per_user: 1\n    max_exemplars: 5\n", nil)
	ctx := context.Background()
	families := func(id string) int {
		md, err := h.client.Metadata(ctx, &ingesterpb.MetadataRequest{Tenant: id})
		require.NoError(t, err)
		return len(md.Metadata)
	}
	_, err := h.pushRequest("a", metadataRequest("x", "y", "z"))
	require.ErrorContains(t, err, "the tenant already has metadata for 1 metric families")
	h.pushMetadata(t, "b", "x", "y", "z")
	require.Equal(t, 1, families("a"))
	require.Equal(t, 3, families("b"), "b keeps the flag's 10000")

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    max_metadata_per_user: 2\n    max_exemplars: 50\n"), 0o644))
	require.NoError(t, ovr.Load())
	_, err = h.pushRequest("a", metadataRequest("x", "y", "z"))
	require.ErrorContains(t, err, "the tenant already has metadata for 2 metric families")
	require.Equal(t, 2, families("a"))

	u, err := h.ing.acquire(ctx, "a", false)
	require.NoError(t, err)
	defer h.ing.release(u)
	require.Equal(t, int64(50), u.config.maxExemplars.Load())
	mfs, err := u.reg.Gather()
	require.NoError(t, err)
	var size float64
	for _, mf := range mfs {
		if mf.GetName() == "prometheus_tsdb_exemplar_max_exemplars" {
			size = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	require.Equal(t, 50.0, size, "exemplar storage resized")
}
