package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

func TestBatchDecodesAsWriteRequest(t *testing.T) {
	const first, n = 1990, 25 // crosses a host boundary
	b := newBatch(first, n)
	seen := map[string]bool{}
	var prev []float64
	for r, ts := range []int64{1_700_000_000_000, 1_700_000_015_000, 1_700_000_030_000} {
		b.setRound(r, ts)
		var wr prompb.WriteRequest
		require.NoError(t, wr.Unmarshal(b.body))
		require.Len(t, wr.Timeseries, n)
		var vals []float64
		for s, series := range wr.Timeseries {
			require.Len(t, series.Labels, 10)
			for i := 1; i < len(series.Labels); i++ {
				require.Less(t, series.Labels[i-1].Name, series.Labels[i].Name, "labels sorted")
			}
			require.Equal(t, "__name__", series.Labels[0].Name)
			require.Len(t, series.Samples, 1)
			require.Equal(t, ts, series.Samples[0].Timestamp)
			v := series.Samples[0].Value
			require.False(t, math.IsNaN(v) || math.IsInf(v, 0))
			if r > 0 && isCounter(first+s) {
				require.Greater(t, v, prev[s], "counter %d grows", s)
			}
			vals = append(vals, v)
			if r == 0 {
				key := series.String()
				require.False(t, seen[key], "duplicate series %s", key)
				seen[key] = true
			}
		}
		prev = vals
	}
}

func TestSeriesLabelsUnique(t *testing.T) {
	seen := map[string]int{}
	for i := range 3 * seriesPerHost {
		var sb strings.Builder
		for _, l := range seriesLabels(i) {
			if l[0] != "__name__" { // unique even without the name, see family
				sb.WriteString(l[0] + "=" + l[1] + ",")
			}
		}
		if j, ok := seen[sb.String()]; ok {
			t.Fatalf("series %d and %d share labels %s", j, i, sb.String())
		}
		seen[sb.String()] = i
	}
}

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 odd", ms(5, 1, 3), 0.5, 3 * time.Millisecond},
		{"p50 even", ms(4, 1, 3, 2), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(seq(100)...), 0.99, 99 * time.Millisecond},
		{"p99 of 10", ms(seq(10)...), 0.99, 10 * time.Millisecond},
		{"max", ms(4, 9, 2), 1, 9 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, percentile(tc.in, tc.p)) })
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

func TestBaseTimestamp(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 7, 0, time.UTC)
	base := baseTimestamp(now, 250, 15*time.Second)
	last := base + 249*15000
	require.Equal(t, now.Truncate(15*time.Second).UnixMilli(), last, "last round at now, rounded down")
	require.NoError(t, checkTimestamps(base, last))
	require.ErrorContains(t, checkTimestamps(1000, last), "varint bytes")
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(c *Config)
		wantErr string
	}{
		{"defaults", func(c *Config) {}, ""},
		{"no series", func(c *Config) { c.Series = 0 }, "-series"},
		{"no senders", func(c *Config) { c.Senders = 0 }, "-senders"},
		{"unknown target", func(c *Config) { c.Targets = "strata,mimir" }, `unknown server "mimir"`},
		{"unknown mode", func(c *Config) { c.Mode = "fleet" }, "-mode"},
		{"cluster", func(c *Config) { c.Mode = "cluster" }, ""},
		{"cluster ignores targets", func(c *Config) { c.Mode, c.Targets = "cluster", "mimir" }, ""},
		{"rf above ingesters", func(c *Config) { c.Mode, c.Cluster.ReplicationFactors = "cluster", "5,1" }, "5 copies need at least 5 ingesters"},
		{"bad rf", func(c *Config) { c.Mode, c.Cluster.ReplicationFactors = "cluster", "3,x" }, `"x" is not a positive integer`},
		{"no rf", func(c *Config) { c.Mode, c.Cluster.ReplicationFactors = "cluster", " , " }, "none given"},
		{"no distributors", func(c *Config) { c.Mode, c.Cluster.Distributors = "cluster", 0 }, "-cluster.distributors"},
		{"noisy", func(c *Config) { c.Mode = "noisy" }, ""},
		{"noisy burst below a push", func(c *Config) { c.Mode, c.Noisy.ABurst = "noisy", 1999 }, "-noisy.a-ingestion-burst-size 1999 is below -series-per-request 2000"},
		{"noisy no workers", func(c *Config) { c.Mode, c.Noisy.AWorkers = "noisy", 0 }, "-noisy.a-workers"},
		{"noisy interval", func(c *Config) { c.Mode, c.Noisy.Interval = "noisy", time.Millisecond }, "-noisy.interval"},
		{"noisy cluster checks cluster flags", func(c *Config) { c.Mode, c.Noisy.Cluster, c.Cluster.Distributors = "noisy", true, 0 }, "-cluster.distributors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.RegisterFlags(flagSet())
			c = c.withModeDefaults()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}

// TestBenchTiny runs the whole bench at a tiny scale against Debian's
// Prometheus and the strata binary, and checks that every sample was
// accepted, the queries answered, and the report has its rows. Without a
// strata binary that builds it measures Prometheus alone (except on CI).
func TestBenchTiny(t *testing.T) {
	procs.LookPathT(t, "prometheus", "prometheus")
	dir := t.TempDir()
	args := []string{
		"-series=300", "-series-per-request=70", "-senders=3", "-rounds=40",
		"-settle=0s", "-rss-readings=2", "-rss-every=10ms", "-query-reps=2", "-query-range=5m",
		"-timeout=1m", "-work-dir=" + dir, "-keep", "-json-out=" + filepath.Join(dir, "results.json"),
	}
	targets := []string{"prometheus"}
	if bin, err := buildStrata(); err == nil {
		targets = []string{"strata", "prometheus"}
		args = append(args, "-strata.bin="+bin)
	} else if os.Getenv("CI") != "" {
		t.Fatal(err)
	} else {
		t.Logf("strata does not build, measuring Prometheus alone: %v", err)
	}
	args = append(args, "-targets="+strings.Join(targets, ","))
	var cfg Config
	fs := flagSet()
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), &out))
	t.Log("\n" + out.String())

	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	var results []result
	require.NoError(t, json.Unmarshal(b, &results))
	require.Len(t, results, len(targets))
	for i, r := range results {
		require.Equal(t, targets[i], r.Target)
		require.Zero(t, r.RejectedRequests, r.FirstError)
		require.EqualValues(t, 300*40, r.SamplesAccepted)
		require.Equal(t, 5*40, r.Requests)
		require.Positive(t, r.SamplesPerSecond)
		require.Positive(t, r.SteadyRSSBytes)
		require.GreaterOrEqual(t, r.PeakRSSBytes, r.SteadyRSSBytes)
		require.Len(t, r.Queries, 2)
		for _, q := range r.Queries {
			require.Zero(t, q.Errors, "%s %s: %s", r.Target, q.Name, q.Error)
			require.Positive(t, q.Series, q.Name)
		}
		require.Equal(t, 1, r.Queries[1].Series, "one-series query")
	}
	for _, row := range []string{"accepted samples/s", "server CPU-s per M samples", "steady RSS per active series (B)", "push latency p99 (ms)", "query all-series p50 (ms)"} {
		require.Contains(t, out.String(), row)
	}
}

func BenchmarkBuildRequest(b *testing.B) {
	bt := newBatch(0, 2000)
	var dst []byte
	ts := int64(1_700_000_000_000)
	b.ReportAllocs()
	b.SetBytes(int64(len(bt.body)))
	r := 0
	for b.Loop() {
		bt.setRound(r, ts+int64(r)*15000)
		dst = snappy.Encode(dst[:cap(dst)], bt.body)
		r++
	}
	b.ReportMetric(float64(len(dst)), "compressed-bytes")
}

func flagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// buildStrata builds the strata binary once for every test of the package.
var buildStrata = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "strata-bench-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	return procs.BuildStrata(dir)
})

// binDir holds the binary of buildStrata; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func TestPrebuiltBodiesMatchLazyOnes(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	pre, err := newWorkload(250, 60, 6, 15*time.Second, now)
	require.NoError(t, err)
	pre.prebuild(3)
	lazy, err := newWorkload(250, 60, 6, 15*time.Second, now)
	require.NoError(t, err)
	require.Equal(t, 5*6, pre.requests())
	var buf []byte
	for idx := range lazy.requests() {
		require.Equal(t, pre.compressed[idx], lazy.body(idx, &buf), "request %d", idx)
	}
}
