package distributor

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/tenant"
)

// newLabelCap returns a tenant.LabelCap of at most maxTenants tenants,
// idle timeout 1h, on clock.
func newLabelCap(t testing.TB, maxTenants int, clock *atomic.Int64, reg prometheus.Registerer) *tenant.LabelCap {
	t.Helper()
	tl, err := tenant.NewLabelCap(tenant.MetricsConfig{MaxTenantLabels: maxTenants, TenantLabelIdleTimeout: time.Hour}, reg,
		func() time.Time { return time.Unix(0, clock.Load()) })
	require.NoError(t, err)
	return tl
}

// labelCapHarness is a Distributor whose tenant labels are capped, with a
// rate limit of 1 sample/s and a burst of 10 per tenant.
func newLabelCapHarness(t *testing.T, maxTenants int, clock *atomic.Int64) *harness {
	t.Helper()
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 1, 10, limits.StrategyLocal
	ings, clients, fr := newFakes(1)
	h := &harness{ings: ings, ring: fr, reg: prometheus.NewRegistry()}
	d, err := New(defaultConfig(), Deps{
		Ring: fr, Clients: clients, Limits: limits.NewOverrides(lim),
		Tenants:      tenant.Resolver{MultitenancyEnabled: true},
		Log:          slog.New(slog.DiscardHandler),
		Reg:          h.reg,
		Now:          func() time.Time { return testNow },
		TenantLabels: newLabelCap(t, maxTenants, clock, h.reg),
	})
	require.NoError(t, err)
	h.d = d
	return h // no Run: every push here is answered before it returns
}

// pushSeries pushes n one-sample series of metric (no metric name when
// metric is "") for tenantID.
func (h *harness) pushSeries(t *testing.T, tenantID, metric string, n int) (int, string) {
	t.Helper()
	ts := make([]prompb.TimeSeries, n)
	for i := range ts {
		ts[i] = prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "i", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs}},
		}
		if metric != "" {
			ts[i].Labels = append([]prompb.Label{{Name: "__name__", Value: metric}}, ts[i].Labels...)
		}
	}
	req := newPushRequest(encode(t, &prompb.WriteRequest{Timeseries: ts}))
	req.Header.Set("X-Scope-OrgID", tenantID)
	return h.do(t, req)
}

func TestTenantLabelCap(t *testing.T) {
	type push struct {
		after    time.Duration // clock advance before the push
		tenant   string
		metric   string // "" sends series without a metric name
		n        int
		wantCode int
		wantMsg  string // the whole body, "" for none
	}
	for _, tc := range []struct {
		name        string
		max         int
		pushes      []push
		wantMetrics string // received and discarded samples
	}{
		{
			name: "tenants over the cap are summed under <other>",
			max:  2,
			pushes: []push{
				{0, "a", "up", 3, http.StatusNoContent, ""},
				{0, "b", "up", 2, http.StatusNoContent, ""},
				{0, "c", "up", 4, http.StatusNoContent, ""},
				{0, "d", "up", 8, http.StatusNoContent, ""},
				// The message names the tenant; only the metric folds it.
				{0, "d", "up", 5, http.StatusTooManyRequests, `ingestion rate limit (1 samples/s, burst 10) exceeded for tenant "d": 5 samples in this request (-distributor.ingestion-rate-limit, override "ingestion_rate") [strata-tenant-rate-limit]`},
				{0, "a", "up", 8, http.StatusTooManyRequests, `ingestion rate limit (1 samples/s, burst 10) exceeded for tenant "a": 8 samples in this request (-distributor.ingestion-rate-limit, override "ingestion_rate") [strata-tenant-rate-limit]`},
			},
			wantMetrics: `
strata_distributor_discarded_samples_total{reason="rate_limited",tenant="<other>"} 5
strata_distributor_discarded_samples_total{reason="rate_limited",tenant="a"} 8
strata_distributor_received_samples_total{tenant="<other>"} 12
strata_distributor_received_samples_total{tenant="a"} 3
strata_distributor_received_samples_total{tenant="b"} 2
`,
		},
		{
			name: "an idle tenant's series are deleted and its slot goes to an active one",
			max:  2,
			pushes: []push{
				{0, "a", "up", 1, http.StatusNoContent, ""},
				{0, "a", "", 1, http.StatusBadRequest, `series {i="0"} has no metric name (label __name__) [strata-missing-metric-name]`},
				{0, "b", "up", 1, http.StatusNoContent, ""},
				{0, "c", "up", 1, http.StatusNoContent, ""},
				{40 * time.Minute, "b", "up", 1, http.StatusNoContent, ""},
				{0, "c", "up", 1, http.StatusNoContent, ""},
				// a has been idle 1h10m: b's push releases its slot, and
				// c, active 30 minutes ago, takes it.
				{30 * time.Minute, "b", "up", 1, http.StatusNoContent, ""},
				{0, "c", "up", 1, http.StatusNoContent, ""},
			},
			wantMetrics: `
strata_distributor_received_samples_total{tenant="<other>"} 2
strata_distributor_received_samples_total{tenant="b"} 3
strata_distributor_received_samples_total{tenant="c"} 1
`,
		},
		{
			name: "cap 0 sums every tenant, validation discards too",
			max:  0,
			pushes: []push{
				{0, "a", "up", 1, http.StatusNoContent, ""},
				{0, "b", "", 2, http.StatusBadRequest, `series {i="0"} has no metric name (label __name__) [strata-missing-metric-name]; and 1 more series rejected`},
			},
			wantMetrics: `
strata_distributor_discarded_samples_total{reason="strata-missing-metric-name",tenant="<other>"} 2
strata_distributor_received_samples_total{tenant="<other>"} 1
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var clock atomic.Int64
			clock.Store(testNow.UnixNano())
			h := newLabelCapHarness(t, tc.max, &clock)
			for i, p := range tc.pushes {
				clock.Add(int64(p.after))
				code, body := h.pushSeries(t, p.tenant, p.metric, p.n)
				require.Equal(t, p.wantCode, code, "push %d: %s", i, body)
				require.Equal(t, p.wantMsg, body, "push %d", i)
			}
			want := "# HELP strata_distributor_discarded_samples_total Float and histogram samples dropped by validation or a limit, by the stable id of the rule; a push refused unread by the ingestion rate limit counts the samples of the tenant's last refused push.\n" +
				"# TYPE strata_distributor_discarded_samples_total counter\n" +
				"# HELP strata_distributor_received_samples_total Float and histogram samples accepted after validation and sent to ingesters.\n" +
				"# TYPE strata_distributor_received_samples_total counter\n"
			require.NoError(t, testutil.GatherAndCompare(h.reg, strings.NewReader(want+strings.TrimLeft(tc.wantMetrics, "\n")),
				"strata_distributor_received_samples_total", "strata_distributor_discarded_samples_total"))
		})
	}
}

func TestHAMetricsTenantLabelCap(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		max                         int
		wantTenant, wantCluster     string
		wantKept, wantDedupedSeries int
	}{
		{"tenant with a slot: its clusters are labelled", 1, "ha", "c1", 1, 1},
		// The clusters of summed tenants would be as many as without the
		// cap: they are summed too.
		{"tenant without a slot: its clusters are summed", 0, tenant.OtherLabel, tenant.OtherLabel, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now, clock atomic.Int64
			now.Store(testNow.UnixNano())
			clock.Store(testNow.UnixNano())
			h := newHAHarness(t, newGossipKV(t, "solo"), &now, newLabelCap(t, tc.max, &clock, nil))
			code, body := h.pushAs(t, "ha", haSeries(testNow, "up", "c1", "a"))
			require.Equal(t, http.StatusNoContent, code, body)
			code, body = h.pushAs(t, "ha", haSeries(testNow, "up", "c1", "b"))
			require.Equal(t, http.StatusAccepted, code)
			require.Equal(t, `HA pair dedup: replica "b" of cluster "c1" is not the elected replica ("a"); its samples were accepted and dropped [strata-ha-replica-not-elected]`, body)
			m := h.d.ha.m
			require.Equal(t, float64(tc.wantKept), testutil.ToFloat64(m.kept.WithLabelValues(tc.wantTenant, tc.wantCluster)))
			require.Equal(t, float64(tc.wantDedupedSeries), testutil.ToFloat64(m.deduped.WithLabelValues(tc.wantTenant, tc.wantCluster)))
			require.Equal(t, 1, testutil.CollectAndCount(m.kept), "one kept series")
		})
	}
}

// countPush is what one push does with the tenant label: look it up, then
// count what validation kept and dropped.
func countPush(d *Distributor, st *pushState, tenantID string) {
	st.tenantLabel = d.tenantLabels.Value(tenantID)
	d.countValidation(st)
}

// decodedPush returns a pushState holding the standard request, decoded
// and validated, with one discarded sample per validation rule counted.
func decodedPush(t testing.TB, d *Distributor) *pushState {
	t.Helper()
	st := newPushState()
	raw, err := (&prompb.WriteRequest{Timeseries: nodeSeries(benchSeries)}).Marshal()
	require.NoError(t, err)
	st.req = remotewrite.NewRequest()
	require.NoError(t, remotewrite.Decode(raw, st.req))
	st.val.reset(d.limits.For("bench"), false, testNow)
	st.val.validate(st.req)
	for why := range numReasons {
		st.val.samples[why] = 1
	}
	return st
}

func TestTenantLabelPushDoesNotAllocate(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	st := decodedPush(t, h.d)
	for _, id := range []string{"team-a", "team-b"} {
		countPush(h.d, st, id) // first push: the tenant and its series are created
		if n := testing.AllocsPerRun(100, func() { countPush(h.d, st, id) }); n != 0 {
			t.Fatalf("tenant %q: %v allocations per push", id, n)
		}
	}
}

// BenchmarkTenantLabelPush is the tenant label's cost per push: the
// LabelCap lookup and the tenant-labelled counters of one validated
// standard request (every discard reason counted once), steady state.
//
//	go test ./distributor -run '^$' -bench TenantLabelPush -count 8
func BenchmarkTenantLabelPush(b *testing.B) {
	h := newHarness(b, harnessOpts{})
	st := decodedPush(b, h.d)
	countPush(h.d, st, "bench")
	b.ReportAllocs()
	for b.Loop() {
		countPush(h.d, st, "bench")
	}
}
