package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestBenchClusterTiny runs -mode=cluster at a tiny scale against the built
// binary: an RF=3 cluster (3 zones) and an RF=1 cluster, each of 3
// ingesters, 2 distributors and a querier. It checks that every sample was
// accepted, each ingester holds the series its replication factor implies,
// the querier answered, and the report has every row; never how fast.
func TestBenchClusterTiny(t *testing.T) {
	bin, err := buildStrata()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("strata does not build: %v", err)
	}
	const series, perRequest, rounds = 300, 70, 20
	dir, jsonPath := t.TempDir(), filepath.Join(t.TempDir(), "results.json")
	var cfg Config
	fs := flagSet()
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-mode=cluster", "-strata.bin=" + bin,
		"-series=300", "-series-per-request=70", "-senders=3", "-rounds=20",
		"-settle=0s", "-rss-readings=2", "-rss-every=10ms", "-query-reps=2", "-query-range=5m",
		"-timeout=1m", "-cluster.start-timeout=40s", "-work-dir=" + dir, "-json-out=" + jsonPath,
	}))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), &out))
	t.Log("\n" + out.String())

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var results []clusterResult
	require.NoError(t, json.Unmarshal(b, &results))
	require.Len(t, results, 2)
	for i, rf := range []int{3, 1} {
		r := results[i]
		require.Equal(t, rf, r.ReplicationFactor)
		require.Zero(t, r.RejectedRequests, r.FirstError)
		require.EqualValues(t, series*rounds, r.SamplesAccepted)
		require.Equal(t, 5*rounds, r.Requests)
		require.Positive(t, r.SamplesPerSecond)
		require.Positive(t, r.CPUSeconds)
		require.Positive(t, r.IngesterBytesPerSeries)
		require.Positive(t, r.IngesterBytesPerClusterSeries)
		require.Equal(t, 3, r.Ingesters)
		require.Equal(t, 2, r.Distributors)
		require.Len(t, r.Nodes, 6)
		require.Len(t, r.Roles, 3)
		var held int64
		for _, n := range r.Nodes {
			require.Positive(t, n.SteadyRSSBytes, n.Name)
			require.GreaterOrEqual(t, n.PeakRSSBytes, n.SteadyRSSBytes, n.Name)
			if n.Role == procs.RoleIngester {
				held += n.ActiveSeries
				require.Positive(t, n.Ownership, n.Name)
			}
		}
		require.EqualValues(t, rf*series, held, "every series on rf ingesters")
		require.Len(t, r.Queries, 2)
		for _, q := range r.Queries {
			require.Zero(t, q.Errors, "%s %s: %s", r.Target, q.Name, q.Error)
			require.Positive(t, q.Series, q.Name)
		}
		require.Equal(t, 1, r.Queries[1].Series, "one-series query")
	}
	require.Contains(t, out.String(), "cluster-rf3/cluster-rf1")
	for _, f := range clusterFigures(nil) {
		require.Contains(t, out.String(), f.name)
	}
	require.Contains(t, out.String(), "query all-series p99 (querier)")
	require.Contains(t, out.String(), "a smaller workload than the single-process comparison")
}

func TestSumMetric(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		wantErr  string
	}{
		{"two tenants", "# HELP strata_ingester_active_series x\n# TYPE strata_ingester_active_series gauge\n" +
			"strata_ingester_active_series{tenant=\"a\"} 100\nstrata_ingester_active_series{tenant=\"b\"} 2.5e3\n", 2600, ""},
		{"no labels", "strata_ingester_active_series 7\n", 7, ""},
		{"prefix of another name", "strata_ingester_active_series_total 9\nstrata_ingester_active_series{tenant=\"a\"} 1\n", 1, ""},
		{"brace in label value", "strata_ingester_active_series{tenant=\"}x\"} 4\n", 4, ""},
		{"absent", "go_goroutines 12\n", 0, ""},
		{"bad value", "strata_ingester_active_series{tenant=\"a\"} many\n", 0, "many"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumMetric(strings.NewReader(tc.in), "strata_ingester_active_series")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}
