package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFigureTable(t *testing.T) {
	type row struct{ a, b float64 }
	figs := []figure[row]{
		{"first", "", func(r row) float64 { return r.a }},
		{"second", "ms", func(r row) float64 { return r.b }},
	}
	for _, tc := range []struct {
		name  string
		table figureTable[row]
		want  string
	}{
		{"no ratio", figureTable[row]{columns: []string{"x"}, results: []row{{3, 12.25}}, figures: figs},
			"        figure   x\n" +
				"         first   3\n" +
				"second (ms)  12.2\n"},
		{"ratio first over second", figureTable[row]{columns: []string{"x", "y"}, results: []row{{3, 12.5}, {1.5, 0}}, figures: figs, ratio: []int{0, 1}},
			"     figure     x      y  x/y\n" +
				"      first     3  1.500 2.00\n" +
				"second (ms)  12.5      0    -\n"},
		{"ratio second over first, not applicable", figureTable[row]{columns: []string{"x", "y"}, results: []row{{math.NaN(), 2}, {4, 3}}, figures: figs, ratio: []int{1, 0}},
			"     figure      x      y  y/x\n" +
				"      first      -      4    -\n" +
				"second (ms)      2      3 1.50\n"},
		{"ratio out of range ignored", figureTable[row]{columns: []string{"x"}, results: []row{{1234.5, 0.25}}, figures: figs, ratio: []int{0, 1}},
			"     figure      x\n" +
				"      first   1234\n" +
				"second (ms)  0.250\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.table.print(&out)
			require.Equal(t, normalizeTable(tc.want), normalizeTable(out.String()))
		})
	}
}

// normalizeTable drops alignment, so expected tables need not count spaces.
func normalizeTable(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " | "))
	}
	return strings.Join(lines, "\n")
}

func TestFormatFigure(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{math.NaN(), "-"}, {0, "0"}, {20, "20"}, {1e6, "1000000"}, {1234.5, "1234"}, {12.25, "12.2"}, {0.1234, "0.123"}, {-2.5, "-2.500"},
	} {
		require.Equal(t, tc.want, formatFigure(tc.in), "%v", tc.in)
	}
}

func TestNoisyVerdicts(t *testing.T) {
	phase := func(name string, sent, failed int, p99 time.Duration, a *floodResult) *noisyPhase {
		return &noisyPhase{Name: name, BSent: sent, BSucceeded: sent - failed, BFailed: failed, BP99: p99, A: a, BFirstError: map[bool]string{true: "push: status 500: boom"}[failed > 0]}
	}
	flood := &floodResult{Sent: 100, Limited: 90, Accepted: 10}
	for _, tc := range []struct {
		name      string
		phases    []*noisyPhase
		wantLines []string
		wantErr   string
	}{
		{"pass", []*noisyPhase{phase("B solo", 10, 0, 10*time.Millisecond, nil), phase("B with A", 10, 0, 15*time.Millisecond, flood)},
			[]string{"tenant B pushes failed: 0 of 20 (must be 0): PASS", "tenant B p99 with A / p99 solo: 1.50 (target <= 2): PASS"}, ""},
		{"slow is a miss, not a failure", []*noisyPhase{phase("B solo", 10, 0, 10*time.Millisecond, nil), phase("B with A", 10, 0, 25*time.Millisecond, flood)},
			[]string{"tenant B pushes failed: 0 of 20 (must be 0): PASS", "tenant B p99 with A / p99 solo: 2.50 (target <= 2): MISS"}, ""},
		{"a failed push fails", []*noisyPhase{phase("B solo", 10, 0, 10*time.Millisecond, nil), phase("B with A", 10, 2, 10*time.Millisecond, flood)},
			[]string{"tenant B pushes failed: 2 of 20 (must be 0): FAIL", "tenant B p99 with A / p99 solo: 1.00 (target <= 2): PASS"}, "2 of 20 pushes failed (first: push: status 500: boom)"},
		{"A never limited", []*noisyPhase{phase("B solo", 10, 0, 10*time.Millisecond, nil), phase("B with A", 10, 0, 10*time.Millisecond, &floodResult{Sent: 5, Accepted: 5})},
			[]string{"tenant B pushes failed: 0 of 20 (must be 0): PASS", "tenant B p99 with A / p99 solo: 1.00 (target <= 2): PASS", "note: tenant A never got 429: it did not exceed its limit, so the run says nothing about isolation"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &noisyResult{Phases: tc.phases, ARate: 10000}
			r.P99Ratio = float64(tc.phases[1].BP99) / float64(tc.phases[0].BP99)
			require.Equal(t, tc.wantLines, r.verdicts())
			if tc.wantErr == "" {
				require.NoError(t, r.failure())
			} else {
				require.ErrorContains(t, r.failure(), tc.wantErr)
			}
			var out bytes.Buffer
			printNoisyReport(&out, r)
			for _, l := range tc.wantLines {
				require.Contains(t, out.String(), l)
			}
		})
	}
}

func TestNoisyOverrides(t *testing.T) {
	got := string(noisyOverrides(&noisyResult{ARate: 10000, ABurst: 20000, BRate: 200000, BBurst: 400000}))
	require.Equal(t, "overrides:\n"+
		"  tenant-a:\n    ingestion_rate: 10000\n    ingestion_burst_size: 20000\n"+
		"  tenant-b:\n    ingestion_rate: 200000\n    ingestion_burst_size: 400000\n", got)
}

// TestBenchNoisyTiny runs -mode=noisy for a few seconds against the built
// binary and checks what must hold whatever the machine's speed: every push
// of tenant B succeeded, tenant A was answered 429 and nothing but 2xx or
// 429, and the report has every row. It never checks latency.
func TestBenchNoisyTiny(t *testing.T) {
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
		"-mode=noisy", "-strata.bin=" + bin,
		"-series=400", "-series-per-request=100", "-senders=2", "-rounds=4", "-timeout=1m",
		"-noisy.interval=250ms", "-noisy.warmup-rounds=1", "-noisy.a-ramp=250ms", "-noisy.a-workers=2",
		"-noisy.a-ingestion-rate=400", "-noisy.a-ingestion-burst-size=200", "-noisy.a-max-requests=20000",
		"-work-dir=" + dir, "-json-out=" + jsonPath,
	}))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), &out))
	t.Log("\n" + out.String())

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var r noisyResult
	require.NoError(t, json.Unmarshal(b, &r))
	require.Len(t, r.Phases, 2)
	for _, p := range r.Phases {
		require.Equal(t, 4*4, p.BSent, p.Name)
		require.Equal(t, p.BSent, p.BSucceeded, "%s: %s", p.Name, p.BFirstError)
		require.Zero(t, p.BFailed, p.Name)
		require.Positive(t, p.BP99, p.Name)
		require.GreaterOrEqual(t, p.BMax, p.BP99, p.Name)
		require.Positive(t, p.StrataMaxRSSBytes, p.Name)
	}
	require.Nil(t, r.Phases[0].A)
	a := r.Phases[1].A
	require.NotNil(t, a)
	require.Positive(t, a.Limited, "tenant A got 429")
	require.Positive(t, a.Accepted, "tenant A's burst passed")
	require.Zero(t, a.Other, a.FirstOther)
	require.Equal(t, a.Sent, a.Accepted+a.Limited)
	for _, f := range noisyFigures(&r) {
		require.Contains(t, out.String(), f.name)
	}
	require.Contains(t, out.String(), "B with A/B solo")
	require.Contains(t, out.String(), "tenant B pushes failed: 0 of 32 (must be 0): PASS")
}
