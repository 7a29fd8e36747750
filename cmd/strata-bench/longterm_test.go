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
)

// TestBenchLongtermTiny runs -mode=longterm at a tiny scale against the
// built binary: RF 3 copies of 2h blocks in the bucket, strata's compactor
// merges them into one 24h block per tenant and day, both panels answer
// cold and warm, and raw queried samples equal the generated ones; never
// how fast.
func TestBenchLongtermTiny(t *testing.T) {
	bin, err := buildStrata()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("strata does not build: %v", err)
	}
	dir, jsonPath := t.TempDir(), filepath.Join(t.TempDir(), "results.json")
	var cfg Config
	fs := flagSet()
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-mode=longterm", "-strata.bin=" + bin, "-work-dir=" + dir, "-json-out=" + jsonPath,
		"-longterm.series=120", "-longterm.span=48h", "-longterm.interval=1m",
		"-longterm.density-series=40", "-longterm.density-span=24h",
		"-longterm.cold-reps=1", "-longterm.warm-reps=1", "-longterm.timeout=1m",
	}))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), &out))
	t.Log("\n" + out.String())

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var r longtermResult
	require.NoError(t, json.Unmarshal(b, &r))

	require.EqualValues(t, 120*48*60, r.Query.Samples)
	require.EqualValues(t, 40*24*240, r.Density.Samples)
	require.Equal(t, 24, r.Query.Blocks)
	require.Equal(t, 12, r.Density.Blocks)
	// One block per day, holding every sample once.
	require.Equal(t, 2, r.QueryAfter.Blocks)
	require.Equal(t, 1, r.DensityAfter.Blocks)
	require.Equal(t, r.Query.Samples, r.QueryAfter.Samples)
	require.Equal(t, r.Density.Samples, r.DensityAfter.Samples)
	require.Equal(t, 24*time.Hour, r.QueryAfter.MaxSpan)
	require.Less(t, r.DensityAfter.Bytes, r.Density.UploadBytes)
	require.Len(t, r.Families, len(families))

	require.Zero(t, r.Verify.Mismatches, r.Verify.FirstMismatch)
	require.Equal(t, 5*2*2880, r.Verify.Points) // 5 series, first and last window of 2,880 points

	require.Len(t, r.Queries, 2)
	for _, q := range r.Queries {
		require.Zero(t, q.Errors, q.LastError)
		require.Len(t, q.Cold, 1, q.Name)
		require.Len(t, q.Warm, 1, q.Name)
		require.Len(t, q.Refresh, 1, q.Name)
		require.Equal(t, 1, q.Series, q.Name) // 120 series are all on host 0, job "node"
		require.Positive(t, q.ColdCounters[`strata_storegateway_chunks_returned_total`], q.Name)
	}
	for _, row := range []string{"after compaction", "bytes/sample after compaction", "one-series cold", "sum-by-job refresh", "sum-by-job warm", "identical refresh", "node_cpu_seconds_total"} {
		require.Contains(t, out.String(), row)
	}
}

func TestLongtermConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"span not whole days", []string{"-longterm.span=36h"}, "-longterm.span must be a positive multiple of 24h"},
		{"interval not dividing 2h", []string{"-longterm.interval=7m"}, "-longterm.interval must be at least 1s and divide 2h"},
		{"no density set", []string{"-longterm.density-series=0", "-longterm.density-span=1h"}, ""},
		{"density span", []string{"-longterm.density-span=1h"}, "-longterm.density-span must be a positive multiple of 24h"},
		{"no copies", []string{"-longterm.replication-factor=0"}, "-longterm.replication-factor must be at least 1"},
		{"no cold run", []string{"-longterm.cold-reps=0"}, "-longterm.cold-reps must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			fs := flagSet()
			cfg.RegisterFlags(fs)
			require.NoError(t, fs.Parse(append([]string{"-mode=longterm"}, tc.args...)))
			cfg = cfg.withModeDefaults()
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestSeriesModels checks the value models over six hours of 15s rounds: counters
// never go down and do move, constants never move, gauges stay in whole
// units.
func TestSeriesModels(t *testing.T) {
	kinds := map[valueKind]int{}
	for i := range seriesPerHost {
		m := newSeriesModel(i)
		kinds[m.kind]++
		prev, moved := m.at(i, 0), false
		for r := int64(1); r < 1440; r++ {
			v := m.at(i, r)
			switch units := v / m.unit; {
			case m.kind == kindCounter && v < prev:
				t.Fatalf("counter %d went down at round %d: %v -> %v", i, r, prev, v)
			case m.kind == kindConstant && v != prev:
				t.Fatalf("constant %d moved at round %d: %v -> %v", i, r, prev, v)
			case m.kind == kindGauge && units != float64(int64(units)):
				t.Fatalf("gauge %d at round %d is %v units, not whole", i, r, units)
			}
			moved = moved || v != prev
			prev = v
		}
		if m.kind == kindCounter {
			require.True(t, moved, "counter %d never moved", i)
		}
	}
	for _, k := range []valueKind{kindCounter, kindGauge, kindConstant} {
		require.Positive(t, kinds[k], "kind %d", k)
	}
}

func TestSeriesIndexFindsEveryLabelSet(t *testing.T) {
	for _, i := range []int{0, 1, 9, 10, 1999, 2000, 4321} {
		ls := labelsOf(seriesLabels(i))
		got, ok := seriesIndex(ls)
		require.True(t, ok, "series %d", i)
		require.Equal(t, i, got)
	}
}

func TestSelector(t *testing.T) {
	sel := selector(seriesLabels(0))
	require.True(t, strings.HasPrefix(sel, `{__name__="node_cpu_seconds_total",`), sel)
	require.Contains(t, sel, `instance="host-00000:9100"`)
}
