package tenant

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func defaultMetricsConfig() MetricsConfig {
	var c MetricsConfig
	c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func TestMetricsConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*MetricsConfig)
		wantErr string
	}{
		{"defaults", func(*MetricsConfig) {}, ""},
		{"no tenant labels", func(c *MetricsConfig) { c.MaxTenantLabels = 0 }, ""},
		{"negative cap", func(c *MetricsConfig) { c.MaxTenantLabels = -1 }, "-metrics.max-tenant-labels must not be negative, got -1"},
		{"zero idle timeout", func(c *MetricsConfig) { c.TenantLabelIdleTimeout = 0 }, "-metrics.tenant-label-idle-timeout must be positive, got 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultMetricsConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if c := defaultMetricsConfig(); c.MaxTenantLabels != 1000 || c.TenantLabelIdleTimeout != time.Hour {
		t.Fatalf("defaults changed: %+v", c)
	}
}

// labelCapHarness is a LabelCap on a fake clock with one tracked counter.
type labelCapHarness struct {
	c     *LabelCap
	clock *fakeClock
	reg   *prometheus.Registry
	vec   *prometheus.CounterVec
}

func newLabelCapHarness(t testing.TB, maxTenants int, idle time.Duration) *labelCapHarness {
	t.Helper()
	h := &labelCapHarness{clock: &fakeClock{}, reg: prometheus.NewRegistry()}
	h.clock.ns.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	c, err := NewLabelCap(MetricsConfig{MaxTenantLabels: maxTenants, TenantLabelIdleTimeout: idle}, h.reg, h.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	h.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_total", Help: "x"}, []string{LabelName, "reason"})
	h.reg.MustRegister(h.vec)
	c.Track(h.vec)
	return h
}

// count is what a component does: label, then count.
func (h *labelCapHarness) count(tenantID string) string {
	l := h.c.Value(tenantID)
	h.vec.WithLabelValues(l, "r").Inc()
	return l
}

// series returns the tenant label values of the tracked counter, sorted by
// the registry, with their counts: "a=1 <other>=2".
func (h *labelCapHarness) series(t testing.TB) string {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "test_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == LabelName {
					out = append(out, fmt.Sprintf("%s=%g", lp.GetValue(), m.GetCounter().GetValue()))
				}
			}
		}
	}
	return strings.Join(out, " ")
}

func (h *labelCapHarness) requireGauges(t testing.TB, labelled, folded, releases int) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP strata_metrics_tenant_label_releases_total Tenant label slots given up after -metrics.tenant-label-idle-timeout without activity; the tenant's series were deleted.
# TYPE strata_metrics_tenant_label_releases_total counter
strata_metrics_tenant_label_releases_total %d
# HELP strata_metrics_tenants_folded Tenants active within -metrics.tenant-label-idle-timeout whose self-metrics are summed under tenant="<other>", every slot being taken.
# TYPE strata_metrics_tenants_folded gauge
strata_metrics_tenants_folded %d
# HELP strata_metrics_tenants_labelled Tenants whose self-metrics carry their own tenant label value; at most -metrics.max-tenant-labels.
# TYPE strata_metrics_tenants_labelled gauge
strata_metrics_tenants_labelled %d
`, releases, folded, labelled)
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want),
		"strata_metrics_tenants_labelled", "strata_metrics_tenants_folded", "strata_metrics_tenant_label_releases_total"); err != nil {
		t.Fatal(err)
	}
}

func TestLabelCap(t *testing.T) {
	type step struct {
		after  time.Duration // clock advance before the calls
		counts []string      // tenants counting once each, in order
		want   []string      // the label value each got
	}
	for _, tc := range []struct {
		name       string
		max        int
		steps      []step
		wantSeries string
		labelled   int
		folded     int
		releases   int
	}{
		{
			name:       "under the cap every tenant has its own series",
			max:        3,
			steps:      []step{{0, []string{"a", "b", "a"}, []string{"a", "b", "a"}}},
			wantSeries: "a=2 b=1", labelled: 2,
		},
		{
			name:       "over the cap the rest is summed under <other>",
			max:        2,
			steps:      []step{{0, []string{"a", "b", "c", "d", "c", "a"}, []string{"a", "b", OtherLabel, OtherLabel, OtherLabel, "a"}}},
			wantSeries: "<other>=3 a=2 b=1", labelled: 2, folded: 2,
		},
		{
			name:       "cap 0 sums every tenant",
			max:        0,
			steps:      []step{{0, []string{"a", "b"}, []string{OtherLabel, OtherLabel}}},
			wantSeries: "<other>=2", folded: 2,
		},
		{
			name: "an idle tenant's slot goes to an active folded tenant, its series deleted",
			max:  2,
			steps: []step{
				{0, []string{"a", "b", "c"}, []string{"a", "b", OtherLabel}},
				{40 * time.Minute, []string{"b", "c"}, []string{"b", OtherLabel}},
				// a is idle for 1h10m: released at the next sweep (by
				// this Value); c, still active, takes the slot.
				{30 * time.Minute, []string{"b", "c"}, []string{"b", "c"}},
			},
			wantSeries: "<other>=2 b=3 c=1", labelled: 2, releases: 1,
		},
		{
			name: "a released tenant that comes back gets a free slot",
			max:  2,
			steps: []step{
				{0, []string{"a", "b"}, []string{"a", "b"}},
				// Both idle 2h: b's push comes first and keeps it, the
				// sweep it triggers releases a.
				{2 * time.Hour, []string{"b"}, []string{"b"}},
				{0, []string{"a", "c"}, []string{"a", OtherLabel}},
			},
			wantSeries: "<other>=1 a=1 b=2", labelled: 2, folded: 1, releases: 1,
		},
		{
			name: "idle folded tenants are forgotten",
			max:  1,
			steps: []step{
				{0, []string{"a", "b", "c"}, []string{"a", OtherLabel, OtherLabel}},
				{61 * time.Minute, []string{"a"}, []string{"a"}},
			},
			wantSeries: "<other>=2 a=2", labelled: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLabelCapHarness(t, tc.max, time.Hour)
			for i, s := range tc.steps {
				h.clock.advance(s.after)
				for k, id := range s.counts {
					if got := h.count(id); got != s.want[k] {
						t.Fatalf("step %d: tenant %q labelled %q, want %q", i, id, got, s.want[k])
					}
				}
			}
			if got := h.series(t); got != tc.wantSeries {
				t.Fatalf("series %q, want %q", got, tc.wantSeries)
			}
			h.requireGauges(t, tc.labelled, tc.folded, tc.releases)
		})
	}
}

func TestLabelCapScrapeReleases(t *testing.T) {
	// Nobody pushes or queries any more: the scrape of the cap's own
	// metrics releases the idle slots and deletes their series.
	h := newLabelCapHarness(t, 10, time.Hour)
	h.count("a")
	h.count("b")
	h.clock.advance(30 * time.Minute)
	h.count("b")
	h.requireGauges(t, 2, 0, 0)
	h.clock.advance(31 * time.Minute)
	h.requireGauges(t, 1, 0, 1)
	if got := h.series(t); got != "b=2" {
		t.Fatalf("series %q, want b=2", got)
	}
}

func TestLabelCapPeek(t *testing.T) {
	h := newLabelCapHarness(t, 1, time.Hour)
	if got := h.c.Peek("a"); got != OtherLabel {
		t.Fatalf("Peek of an unknown tenant = %q, want %q (Peek takes no slot)", got, OtherLabel)
	}
	h.count("a")
	if got := h.c.Peek("a"); got != "a" {
		t.Fatalf("Peek(a) = %q", got)
	}
	h.clock.advance(59 * time.Minute)
	h.c.Peek("a") // does not keep a active
	h.clock.advance(2 * time.Minute)
	h.requireGauges(t, 0, 0, 1)
}

func TestLabelCapNil(t *testing.T) {
	var c *LabelCap
	c.Track(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x", Help: "x"}, []string{LabelName}))
	if c.Value("a") != "a" || c.Peek("b") != "b" {
		t.Fatal("a nil LabelCap must label every tenant with its id")
	}
}

func TestLabelCapKeepsACopy(t *testing.T) {
	// The id may be a view into a request buffer that is reused.
	h := newLabelCapHarness(t, 10, time.Hour)
	buf := []byte("team-a")
	got := h.c.Value(string(buf)) // a copy already, but the map key must not alias
	copy(buf, "XXXXXX")
	if got != "team-a" || h.c.Value("team-a") != "team-a" {
		t.Fatalf("label %q after the buffer changed", got)
	}
}

func TestLabelCapOtherIsNoTenant(t *testing.T) {
	if Validate(OtherLabel) == nil {
		t.Fatalf("%q is a valid tenant id: a real tenant could be mistaken for the folded ones", OtherLabel)
	}
}

func TestLabelCapConcurrent(t *testing.T) {
	// Pushes of churning tenants, sweeps and scrapes at once (run with
	// -race): the cap holds and every tenant's label is its id or <other>.
	h := newLabelCapHarness(t, 5, time.Minute)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				id := fmt.Sprintf("t-%d", (g*7+i)%23)
				if l := h.count(id); l != id && l != OtherLabel {
					t.Errorf("tenant %q labelled %q", id, l)
					return
				}
				if i%50 == 0 {
					h.clock.advance(20 * time.Second)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if _, err := h.reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	h.c.mu.RLock()
	held, seen := h.c.held, len(h.c.seen)
	own := 0
	for id, e := range h.c.seen {
		if e.label == id {
			own++
		}
	}
	h.c.mu.RUnlock()
	if held > 5 || held != own || seen > 23 {
		t.Fatalf("held %d (own labels %d), seen %d: want held = own <= 5, seen <= 23", held, own, seen)
	}
}

func TestLabelCapValueDoesNotAllocate(t *testing.T) {
	h := newLabelCapHarness(t, 1, time.Hour)
	h.c.Value("held")
	h.c.Value("folded")
	for _, id := range []string{"held", "folded"} {
		if n := testing.AllocsPerRun(100, func() { h.c.Value(id) }); n != 0 {
			t.Fatalf("Value(%q) allocates %v times per call", id, n)
		}
	}
}

// BenchmarkLabelCapValue is the lookup of the push path, per push: a
// tenant with its own slot, a folded one, and many goroutines at once.
//
//	go test ./tenant -run '^$' -bench LabelCap -count 8
func BenchmarkLabelCapValue(b *testing.B) {
	setup := func(b *testing.B) *LabelCap {
		c, err := NewLabelCap(MetricsConfig{MaxTenantLabels: 1000, TenantLabelIdleTimeout: time.Hour}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 2000 {
			c.Value(fmt.Sprintf("tenant-%d", i))
		}
		return c
	}
	for _, id := range []string{"tenant-10", "tenant-1500"} {
		name := "held"
		if id == "tenant-1500" {
			name = "folded"
		}
		b.Run(name, func(b *testing.B) {
			c := setup(b)
			b.ReportAllocs()
			for b.Loop() {
				c.Value(id)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		c := setup(b)
		ids := make([]string, 2000)
		for i := range ids {
			ids[i] = fmt.Sprintf("tenant-%d", i)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Value(ids[i%len(ids)])
				i++
			}
		})
	})
}
