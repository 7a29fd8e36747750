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

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

func TestTenantRuleGroupsParseAsRuleFile(t *testing.T) {
	var rf ruleFile
	for tn := range 3 {
		gs := tenantRuleGroups(rulesTenant(tn), 100, 10, 15*time.Second)
		require.Len(t, gs, 10)
		for _, g := range gs {
			require.Len(t, g.Rules, 10)
			require.Equal(t, "15s", g.Interval)
		}
		rf.Groups = append(rf.Groups, gs...)
	}
	// A last group shorter than the others.
	require.Len(t, tenantRuleGroups("x", 25, 10, time.Second)[2].Rules, 5)

	b, err := marshalRuleFile(rf)
	require.NoError(t, err)
	rgs, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	require.Len(t, rgs.Groups, 30)
	records := map[string]bool{}
	for _, g := range rgs.Groups {
		tenant, _, _ := strings.Cut(g.Name, "-g")
		for _, r := range g.Rules {
			require.False(t, records[tenant+" "+r.Record], "record %s repeats in %s", r.Record, tenant)
			records[tenant+" "+r.Record] = true
			// Every rule reads its own tenant's series only.
			require.Contains(t, r.Expr, `bench_tenant="`+tenant+`"`)
			require.NotContains(t, r.Expr, "%!")
		}
	}
	require.Len(t, records, 300)
}

func TestStartDelays(t *testing.T) {
	for _, tc := range []struct {
		name   string
		starts []float64
		want   []float64
	}{
		{"one start says nothing", []float64{1000.2}, nil},
		{"on time", []float64{1000.5, 1015.5, 1030.5}, []float64{0, 0, 0}},
		{"one late", []float64{1000.5, 1015.7, 1030.5}, []float64{0, 0.2, 0}},
		// Slot phase 14.9s: a start 0.3s late wraps past the interval.
		{"late across the interval's end", []float64{1004.9, 1020.2, 1034.9}, []float64{0, 0.3, 0}},
		{"a missed slot is not a delay", []float64{1000.5, 1030.6}, []float64{0, 0.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := startDelays(tc.starts, 15)
			require.Len(t, got, len(tc.want))
			for i := range got {
				require.InDelta(t, tc.want[i], got[i], 1e-9, "start %d", i)
			}
		})
	}
}

func TestParseRuleMetrics(t *testing.T) {
	exp := `# TYPE strata_ruler_rule_evaluations_total counter
strata_ruler_rule_evaluations_total{tenant="a"} 100
strata_ruler_rule_evaluations_total{tenant="b"} 50
# TYPE strata_ruler_group_iterations_missed_total counter
strata_ruler_group_iterations_missed_total{tenant="a"} 2
# TYPE strata_ruler_group_evaluation_duration_seconds summary
strata_ruler_group_evaluation_duration_seconds_sum{tenant="a"} 1.5
strata_ruler_group_evaluation_duration_seconds_count{tenant="a"} 10
strata_ruler_group_evaluation_duration_seconds_sum{tenant="b"} 0.5
strata_ruler_group_evaluation_duration_seconds_count{tenant="b"} 5
# TYPE strata_ruler_group_last_evaluation_timestamp_seconds gauge
strata_ruler_group_last_evaluation_timestamp_seconds{rule_group="bench;g1",tenant="a"} 1700000000.25
strata_ruler_group_last_evaluation_timestamp_seconds{rule_group="bench;g1",tenant="b"} 0
`
	s, err := parseRuleMetrics(strings.NewReader(exp), strataRuleMetrics)
	require.NoError(t, err)
	require.Equal(t, ruleSnapshot{
		Evaluations: 150, Missed: 2, DurationCount: 15, DurationSum: 2,
		LastEval: map[string]float64{"a/bench;g1": 1700000000.25},
	}, s)
}

func TestNewRulesResult(t *testing.T) {
	rc := RulesConfig{Tenants: 2, Count: 30, GroupSize: 10, Interval: 10 * time.Second}
	first := ruleSnapshot{Evaluations: 100, Failures: 1, Iterations: 10, DurationCount: 10, DurationSum: 1,
		LastEval: map[string]float64{"g1": 1000, "g2": 1003}}
	last := ruleSnapshot{Evaluations: 400, Failures: 1, Iterations: 40, Missed: 3, DurationCount: 40, DurationSum: 4,
		LastEval: map[string]float64{"g1": 1020.5, "g2": 1003}}
	starts := map[string][]float64{"g1": {1000, 1010, 1020.5}, "g2": {1003}}
	r := newRulesResult("strata", rc, 30, first, last, starts)
	r.CPUSeconds = 0.6
	require.Equal(t, 4, r.GroupsExpected) // 15 rules per tenant: groups of 10 and 5
	require.Equal(t, 1, r.GroupsSeen)     // g2 did not start again in the window
	require.InDelta(t, 10, r.evaluationsPerSecond(), 1e-9)
	require.Zero(t, r.Failures)
	require.InDelta(t, 3, r.Missed, 1e-9)
	require.InDelta(t, 100, r.meanIterationMillis(), 1e-9)
	require.InDelta(t, 2, r.cpuMillisPerRule(), 1e-9)
	require.Equal(t, 3, r.DelaySamples)
	require.Equal(t, time.Duration(0), r.DelayP50)
	require.Equal(t, 500*time.Millisecond, r.DelayP99)

	require.True(t, math.IsNaN((&rulesResult{}).cpuMillisPerRule()))
}

func TestRulesConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(c *Config)
		wantErr string
	}{
		{"defaults", func(c *Config) {}, ""},
		{"rules not a multiple of tenants", func(c *Config) { c.Rules.Count = 150 }, "-rules.count"},
		{"groups over the ruler's limit", func(c *Config) { c.Rules.GroupSize = 21 }, "-rules.group-size"},
		{"fewer series than tenants", func(c *Config) { c.Series = 50 }, "-series 50 is below -rules.tenants 100"},
		{"unbounded", func(c *Config) { c.Rules.Duration = 2 * time.Hour }, "-rules.duration"},
		{"scrapes too rare", func(c *Config) { c.Rules.ScrapeEvery = 15 * time.Second }, "-rules.scrape-every"},
		{"unknown target", func(c *Config) { c.Targets = "mimir" }, `unknown server "mimir"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			c.RegisterFlags(flagSet())
			c.Mode = "rules"
			c = c.withModeDefaults()
			require.Equal(t, singleSeries, c.Series)
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

// TestBenchRulesTiny runs -mode=rules at a tiny scale against the strata
// binary and Debian's Prometheus: both evaluate every rule without a
// failure and record the same series.
func TestBenchRulesTiny(t *testing.T) {
	procs.LookPathT(t, "prometheus", "prometheus")
	bin, err := buildStrata()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("strata does not build: %v", err)
	}
	dir := t.TempDir()
	args := []string{
		"-mode=rules", "-strata.bin=" + bin, "-series=400", "-series-per-request=100", "-senders=2",
		"-rules.tenants=2", "-rules.count=20", "-rules.interval=2s", "-rules.duration=6s",
		"-rules.warmup=3s", "-rules.scrape-every=500ms", "-rules.history=1m",
		"-work-dir=" + dir, "-keep", "-json-out=" + filepath.Join(dir, "results.json"),
	}
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
	var results []rulesResult
	require.NoError(t, json.Unmarshal(b, &results))
	require.Len(t, results, 2)
	for _, r := range results {
		require.Zero(t, r.Feed.Rejected, r.Feed.FirstError)
		require.Positive(t, r.Evaluations, r.Target)
		require.Zero(t, r.Failures, r.Target)
		require.Equal(t, 2, r.GroupsExpected)
		require.Equal(t, r.GroupsExpected, r.GroupsSeen, r.Target)
		require.Positive(t, r.RecordedSeries, r.Target)
		require.Positive(t, r.PeakRSSBytes, r.Target)
	}
	require.Equal(t, results[1].RecordedSeries, results[0].RecordedSeries, "strata and prometheus recorded different series")
	for _, row := range []string{"rule evaluations/s", "group iterations missed", "start delay p99 (ms)", "server CPU per evaluated rule (ms)", "strata/prometheus"} {
		require.Contains(t, out.String(), row)
	}
}
