package limits

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseOverrides(t *testing.T) {
	def := defaults(t)
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string]func(*Limits) // tenant -> change from defaults
		wantErr string
	}{
		{"empty file", "", map[string]func(*Limits){}, ""},
		{"no overrides", "overrides:\n", map[string]func(*Limits){}, ""},
		{"one field, rest inherited", "overrides:\n  tenant-a:\n    ingestion_rate: 50000\n", map[string]func(*Limits){
			"tenant-a": func(l *Limits) { l.IngestionRate = 50000 },
		}, ""},
		{"durations and several tenants", "overrides:\n  a:\n    max_query_length: 12h\n    past_grace_period: 1h30m\n  b:\n    max_global_series_per_metric: 5\n    ingestion_rate_strategy: local\n", map[string]func(*Limits){
			"a": func(l *Limits) { l.MaxQueryLength = 12 * time.Hour; l.PastGracePeriod = 90 * time.Minute },
			"b": func(l *Limits) { l.MaxGlobalSeriesPerMetric = 5; l.IngestionRateStrategy = StrategyLocal },
		}, ""},
		{"out-of-order window", "overrides:\n  a:\n    out_of_order_time_window: 10m\n", map[string]func(*Limits){
			"a": func(l *Limits) { w := 10 * time.Minute; l.OutOfOrderTimeWindow = &w },
		}, ""},
		{"negative out-of-order window", "overrides:\n  a:\n    out_of_order_time_window: -1m\n", nil, `overrides of tenant "a": out_of_order_time_window must not be negative`},
		{"tenant with nothing", "overrides:\n  a:\n", map[string]func(*Limits){"a": func(*Limits) {}}, ""},
		{"unknown field", "overrides:\n  tenant-a:\n    ingestion_rat: 5\n", nil, `overrides of tenant "tenant-a" (line 3): unknown limit "ingestion_rat"`},
		{"unknown top level", "override:\n  a: {}\n", nil, "field override not found"},
		{"wrong type", "overrides:\n  a:\n    ingestion_burst_size: lots\n", nil, `overrides of tenant "a"`},
		{"not a mapping", "overrides:\n  a: 5\n", nil, `overrides of tenant "a" (line 2): want a mapping`},
		{"invalid limit", "overrides:\n  a:\n    ingestion_rate_strategy: cluster\n", nil, `overrides of tenant "a": -distributor.ingestion-rate-limit-strategy must be`},
		{"negative", "overrides:\n  a:\n    max_global_series_per_user: -1\n", nil, "-ingester.max-global-series-per-user must not be negative"},
		{"hostile tenant", "overrides:\n  ../x:\n    ingestion_rate: 1\n", nil, "overrides: "},
		{"not yaml", "overrides: [", nil, "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOverrides([]byte(tc.in), def)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for id, mod := range tc.want {
				want := def
				mod(&want)
				require.Equal(t, want, *got[id], id)
			}
		})
	}
}

// newFileOverrides returns Overrides following a file in a temp dir.
func newFileOverrides(t *testing.T, content string) (*Overrides, string, *prometheus.Registry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, content)
	reg := prometheus.NewRegistry()
	o, err := NewRuntimeOverrides(RuntimeConfig{File: path, ReloadPeriod: time.Hour}, defaults(t), slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	return o, path, reg
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestReload(t *testing.T) {
	o, path, reg := newFileOverrides(t, "overrides:\n  a:\n    ingestion_rate: 5\n")
	require.Equal(t, o.Defaults(), o.For("a"), "nothing read before Load")
	require.NoError(t, o.Load())
	require.Equal(t, 5.0, o.For("a").IngestionRate)
	require.Equal(t, o.Defaults(), o.For("b"))
	require.Equal(t, 1.0, testutil.ToFloat64(o.m.lastSuccess))
	old := o.For("a")

	// A bad file keeps the last good overrides, and says so.
	writeFile(t, path, "overrides:\n  a:\n    ingestion_rat: 7\n")
	require.ErrorContains(t, o.Load(), `unknown limit "ingestion_rat"`)
	require.Equal(t, 5.0, o.For("a").IngestionRate)
	require.Equal(t, 0.0, testutil.ToFloat64(o.m.lastSuccess))
	require.Equal(t, 1.0, testutil.ToFloat64(o.m.reloads.WithLabelValues("failure")))

	// Fixed: applied; the Limits handed out before are unchanged.
	writeFile(t, path, "overrides:\n  a:\n    ingestion_rate: 7\n  b:\n    ingestion_burst_size: 3\n")
	require.NoError(t, o.Load())
	require.Equal(t, 7.0, o.For("a").IngestionRate)
	require.Equal(t, 3, o.For("b").IngestionBurstSize)
	require.Equal(t, 5.0, old.IngestionRate)
	require.Equal(t, 1.0, testutil.ToFloat64(o.m.lastSuccess))
	require.Equal(t, []string{"a", "b"}, o.Tenants())
	n, err := testutil.GatherAndCount(reg, "strata_runtime_config_hash")
	require.NoError(t, err)
	require.Equal(t, 1, n, "one hash series: the one in force")

	// Removed: back to defaults.
	require.NoError(t, os.Remove(path))
	require.Error(t, o.Load())
	require.Equal(t, 7.0, o.For("a").IngestionRate, "a missing file keeps the last good config")
	writeFile(t, path, "")
	require.NoError(t, o.Load())
	require.Equal(t, o.Defaults(), o.For("a"))
}

// TestRunReloads changes the file under a running Run and polls until the
// change shows: no restart, no sleep.
func TestRunReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runtime.yaml")
	writeFile(t, path, "overrides:\n  a:\n    ingestion_rate: 5\n")
	o, err := NewRuntimeOverrides(RuntimeConfig{File: path, ReloadPeriod: 5 * time.Millisecond}, defaults(t), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	waitFor(t, func() bool { return o.For("a").IngestionRate == 5 })
	writeFile(t, path, "overrides:\n  a:\n    ingestion_rate: 6\n")
	waitFor(t, func() bool { return o.For("a").IngestionRate == 6 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLocalSeriesLimit(t *testing.T) {
	for _, tc := range []struct{ global, rf, ingesters, want int }{
		{0, 3, 3, 0},
		{150000, 1, 1, 150000},
		{150000, 3, 6, 75000},
		{150000, 3, 2, 150000}, // fewer ingesters than RF: each has all
		{10, 3, 100, 1},        // never rounds to "no limit"
		{100, 0, 0, 100},
	} {
		require.Equal(t, tc.want, LocalSeriesLimit(tc.global, tc.rf, tc.ingesters), "%+v", tc)
	}
}

func FuzzParseOverrides(f *testing.F) {
	for _, s := range []string{
		"",
		"overrides:\n  a:\n    ingestion_rate: 50000\n",
		"overrides:\n  a:\n    max_query_length: 12h\n  b: {}\n",
		"overrides:\n  a:\n    bogus: 1\n",
		"overrides: {a: {ingestion_rate_strategy: local, ingestion_burst_size: 1}}",
		"overrides:\n  ../x: {}\n",
		"overrides: &x\n  a: *x\n",
	} {
		f.Add([]byte(s))
	}
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseOverrides(data, def)
		if err != nil {
			return
		}
		for id, l := range got {
			if err := l.Validate(); err != nil {
				t.Fatalf("tenant %q: accepted limits that do not validate: %v", id, err)
			}
		}
	})
}

func BenchmarkOverridesFor(b *testing.B) {
	var def Limits
	def.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	var sb strings.Builder
	sb.WriteString("overrides:\n")
	for i := range 1000 {
		sb.WriteString("  tenant-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ":\n    ingestion_rate: 5\n")
	}
	m, err := ParseOverrides([]byte(sb.String()), def)
	if err != nil {
		b.Fatal(err)
	}
	o := NewOverrides(def)
	o.cur.Store(&overrideSet{byTenant: m})
	for _, id := range []string{"tenant-a", "no-overrides"} {
		b.Run(id, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if o.For(id) == nil {
					b.Fatal("nil")
				}
			}
		})
	}
}
