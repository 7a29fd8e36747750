package ingester

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/tenant"
)

// newLabelCap returns a LabelCap of at most maxTenants tenants, idle
// timeout 1h, on clock.
func newLabelCap(t testing.TB, maxTenants int, clock *atomic.Int64) *tenant.LabelCap {
	t.Helper()
	tl, err := tenant.NewLabelCap(tenant.MetricsConfig{MaxTenantLabels: maxTenants, TenantLabelIdleTimeout: time.Hour}, prometheus.NewRegistry(),
		func() time.Time { return time.Unix(0, clock.Load()) })
	require.NoError(t, err)
	return tl
}

func TestTenantCollectorLabelCap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int
		active  []string // tenants the push path saw, in order
		series  map[string]int
		want    string
		wantErr bool
	}{
		{
			name: "under the cap", max: 10,
			series: map[string]int{"a": 2, "b": 1},
			want: `
strata_ingester_active_series{tenant="a"} 2
strata_ingester_active_series{tenant="b"} 1
`,
		},
		{
			name: "over the cap the rest is summed", max: 2, active: []string{"a", "b"},
			series: map[string]int{"a": 2, "b": 1, "c": 3, "d": 4},
			want: `
strata_ingester_active_series{tenant="<other>"} 7
strata_ingester_active_series{tenant="a"} 2
strata_ingester_active_series{tenant="b"} 1
`,
		},
		{
			name: "cap 0", max: 0,
			series: map[string]int{"a": 2, "b": 1},
			want: `
strata_ingester_active_series{tenant="<other>"} 3
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clock atomic.Int64
			clock.Store(time.Now().UnixNano())
			tl := newLabelCap(t, tc.max, &clock)
			h := startDeps(t, defaultConfig(t), Deps{DataDir: t.TempDir(), TenantLabels: tl})
			for _, id := range tc.active {
				tl.Value(id)
			}
			for id, n := range tc.series {
				h.mustPush(id, seriesOf("m", 0, n, t0)...)
			}
			want := "# HELP strata_ingester_active_series Series in the tenant's TSDB head (in memory).\n# TYPE strata_ingester_active_series gauge\n" +
				strings.TrimLeft(tc.want, "\n")
			require.NoError(t, testutil.GatherAndCompare(h.reg, strings.NewReader(want), "strata_ingester_active_series"))
			// The WAL sizes are labelled the same way.
			n, err := testutil.GatherAndCount(h.reg, "strata_ingester_wal_bytes")
			require.NoError(t, err)
			require.Equal(t, strings.Count(tc.want, "\n")-1, n)
		})
	}
}

func TestTenantLabelsTrackLimitMetrics(t *testing.T) {
	// The series limit's discards of a tenant whose slot is released are
	// deleted; another tenant's stay.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	def := limitsDefaults(t)
	def.MaxGlobalSeriesPerUser = 1
	ovr, _ := newOverrides(t, def, "")
	tl := newLabelCap(t, 10, &clock)
	h := startDeps(t, defaultConfig(t), Deps{DataDir: t.TempDir(), Limits: ovr, TenantLabels: tl})
	for _, id := range []string{"a", "b"} {
		tl.Value(id)
		_, err := h.push(id, seriesOf("m", 0, 3, t0)...)
		require.Error(t, err)
	}
	discarded := func(id string) float64 {
		return testutil.ToFloat64(h.ing.limitMetrics.discarded.WithLabelValues(id, reasonMaxSeriesPerUser.String()))
	}
	require.Equal(t, 2.0, discarded("a"))
	require.Equal(t, 2.0, discarded("b"))

	clock.Add(int64(50 * time.Minute))
	tl.Value("b")
	clock.Add(int64(20 * time.Minute))
	tl.Value("b") // a idle 70 minutes: released, its series deleted
	require.Equal(t, 1, testutil.CollectAndCount(h.ing.limitMetrics.discarded))
	require.Equal(t, 2.0, discarded("b"))
}

func TestCountDiscarded(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	reg := prometheus.NewRegistry()
	ing := newIngester(t, defaultConfig(t), Deps{DataDir: t.TempDir(), Reg: reg, TenantLabels: newLabelCap(t, 1, &clock)})
	for _, tc := range []struct {
		tenant string
		counts map[reason]int
	}{
		{"a", map[reason]int{reasonOutOfOrder: 2, reasonMaxSeriesPerUser: 3}},
		{"b", map[reason]int{reasonTooOld: 1}},
		{"c", map[reason]int{reasonTooOld: 4, reasonOutOfBounds: 1}},
		{"a", map[reason]int{reasonOutOfOrder: 1}},
		{"a", nil}, // nothing refused: nothing counted
	} {
		var r rejections
		for why, n := range tc.counts {
			r.samples[why] = n
		}
		ing.countDiscarded(tc.tenant, &r)
	}
	// (Read series by series: the metric's help is push_limits.go's.)
	vec := ing.limitMetrics.discarded
	for _, w := range []struct {
		tenant, reason string
		want           float64
	}{
		{"a", "out_of_order", 3},
		{"a", "per_user_series_limit", 3},
		{tenant.OtherLabel, "too_old", 5},
		{tenant.OtherLabel, "out_of_bounds", 1},
	} {
		require.Equal(t, w.want, testutil.ToFloat64(vec.WithLabelValues(w.tenant, w.reason)), "%s %s", w.tenant, w.reason)
	}
	require.Equal(t, 4, testutil.CollectAndCount(vec), "b and c are summed, a has two reasons")

	var r rejections
	r.samples[reasonOutOfOrder] = 1
	if n := testing.AllocsPerRun(100, func() { ing.countDiscarded("a", &r) }); n != 0 {
		t.Fatalf("countDiscarded allocates %v times per push", n)
	}
}

func TestCountMetadataDropped(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	reg := prometheus.NewRegistry()
	ing := newIngester(t, defaultConfig(t), Deps{DataDir: t.TempDir(), Reg: reg, TenantLabels: newLabelCap(t, 1, &clock)})
	ing.countMetadataDropped("a", 2)
	ing.countMetadataDropped("b", 3)
	ing.countMetadataDropped("c", 0)
	const want = `# HELP strata_ingester_discarded_metadata_total Metric family metadata not kept, by tenant and reason (per_user_metadata_limit: the tenant has max_metadata_per_user families, -ingester.max-metadata-per-tenant; per_metric_metadata_limit: a new entry evicted the least recently seen of a family with max_metadata_per_metric entries, -ingester.max-metadata-per-metric).
# TYPE strata_ingester_discarded_metadata_total counter
strata_ingester_discarded_metadata_total{reason="per_user_metadata_limit",tenant="<other>"} 3
strata_ingester_discarded_metadata_total{reason="per_user_metadata_limit",tenant="a"} 2
# HELP strata_ingester_metadata_dropped_total Metric family metadata not kept because the tenant has -ingester.max-metadata-per-tenant families.
# TYPE strata_ingester_metadata_dropped_total counter
strata_ingester_metadata_dropped_total 5
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_ingester_discarded_metadata_total", "strata_ingester_metadata_dropped_total"))
}

func TestIngestRatesForgetIdleTenants(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name       string
		lastA      time.Duration // when a last pushed
		now        time.Duration // when b pushes
		wantRateA  bool          // a still has a rate entry
		wantTenant int
	}{
		{"active tenants kept", 0, 20 * time.Minute, true, 2},
		{"idle 30 minutes forgotten", 0, 31 * time.Minute, false, 1},
		{"a recent push keeps it", 10 * time.Minute, 31 * time.Minute, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ingestRates
			r.add("b", 1, base) // the first sweep is due: nothing to forget
			r.add("a", 150, base.Add(tc.lastA))
			r.add("b", 1, base.Add(tc.now))
			r.mu.RLock()
			_, ok := r.byTenant["a"]
			n := len(r.byTenant)
			r.mu.RUnlock()
			require.Equal(t, tc.wantRateA, ok)
			require.Equal(t, tc.wantTenant, n)
			if !ok {
				require.Zero(t, r.rate("a", base.Add(tc.now)), "a forgotten tenant's rate is 0, as it had decayed to")
			}
		})
	}
}

func TestIngestRatesForgottenEntryIsNotCounted(t *testing.T) {
	// An add that found an entry just before it was forgotten counts into
	// a new one instead.
	base := time.Unix(1_800_000_000, 0)
	var r ingestRates
	r.add("a", 1, base)
	r.mu.RLock()
	old := r.byTenant["a"]
	r.mu.RUnlock()
	old.mu.Lock()
	done := make(chan struct{})
	go func() { r.add("a", 150, base.Add(time.Second)); close(done) }()
	old.gone = true // what forgetIdle does
	r.mu.Lock()
	delete(r.byTenant, "a")
	r.mu.Unlock()
	old.mu.Unlock()
	<-done
	require.Equal(t, int64(1), old.pending)
	require.InDelta(t, 10, r.rate("a", base.Add(16*time.Second)), 1e-9)
}

func BenchmarkTenantLabel(b *testing.B) {
	var m metrics
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	m.tenantLabels.Store(newLabelCap(b, 1000, &clock))
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = fmt.Sprintf("tenant-%d", i)
		m.tenantLabel(ids[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.tenantLabel(ids[i%len(ids)])
		i++
	}
}
