package distributor

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// haHarness is a Distributor with HA-pair dedup over a gossip KV, a clock
// the test moves, and per-tenant overrides: tenant "ha" has dedup on (with
// ha_max_clusters 2), every other tenant the defaults (off).
type haHarness struct {
	*harness
	kv  *gossip.KV
	now *atomic.Int64 // unix ns
}

const haOverrides = `
overrides:
  ha:
    accept_ha_samples: true
    ha_max_clusters: 2
`

func newGossipKV(t testing.TB, name string, seeds ...string) *gossip.KV {
	t.Helper()
	var cfg gossip.Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.BindAddress = "127.0.0.1:0"
	cfg.Join = strings.Join(seeds, ",")
	cfg.GossipInterval = 20 * time.Millisecond
	cfg.PullPushInterval = 500 * time.Millisecond
	cfg.RejoinInterval = 200 * time.Millisecond
	kv, err := gossip.New(cfg, name, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, RegisterHATrackerKey(kv))
	return kv
}

// runGossip runs kv until the test ends and waits until it listens.
func runGossip(t testing.TB, kv *gossip.KV) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool { return kv.Addr() != "" }, 10*time.Second, 5*time.Millisecond)
}

func newHAHarness(t testing.TB, kv *gossip.KV, now *atomic.Int64, tl *tenant.LabelCap) *haHarness {
	t.Helper()
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte(haOverrides), 0o600))
	ovr, err := limits.NewRuntimeOverrides(limits.RuntimeConfig{File: file, ReloadPeriod: time.Hour}, defaultLimits(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, ovr.Load())

	ings, clients, fr := newFakes(1)
	h := &harness{ings: ings, ring: fr, reg: prometheus.NewRegistry()}
	d, err := New(defaultConfig(), Deps{
		Ring: fr, Clients: clients, Limits: ovr,
		Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Log:     slog.New(slog.DiscardHandler), Reg: h.reg,
		Now:  func() time.Time { return time.Unix(0, now.Load()) },
		HAKV: kv, TenantLabels: tl,
	})
	require.NoError(t, err)
	d.ha.jitter = 0
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return &haHarness{harness: h, kv: kv, now: now}
}

// haSeries is one series of an HA replica; "" leaves a label out.
func haSeries(now time.Time, name, cluster, replica string) prompb.TimeSeries {
	ts := prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "node"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}},
	}
	if cluster != "" {
		ts.Labels = append(ts.Labels, prompb.Label{Name: "cluster", Value: cluster})
	}
	if replica != "" {
		ts.Labels = append(ts.Labels, prompb.Label{Name: "__replica__", Value: replica})
	}
	return ts
}

// pushAs pushes series as tenant at the harness' clock.
func (h *haHarness) pushAs(t testing.TB, tenantID string, series ...prompb.TimeSeries) (int, string) {
	t.Helper()
	req := newPushRequest(encode(t, &prompb.WriteRequest{Timeseries: series}))
	req.Header.Set("X-Scope-OrgID", tenantID)
	return h.do(t, req)
}

func TestHADedup(t *testing.T) {
	type step struct {
		at               time.Duration // since the start
		tenant           string        // "ha" when empty
		cluster, replica string
		wantCode         int
		wantErr          string // in the body
		wantReplicaLabel bool   // the forwarded series keep __replica__
	}
	accepted := http.StatusNoContent
	for _, tc := range []struct {
		name        string
		steps       []step
		wantChanges float64 // failovers of tenant ha, cluster c1
	}{
		{"elected replica kept, other dropped", []step{
			{0, "", "c1", "a", accepted, "", false},
			{time.Second, "", "c1", "b", http.StatusAccepted, `replica "b" of cluster "c1" is not the elected replica ("a")`, false},
			{2 * time.Second, "", "c1", "a", accepted, "", false},
		}, 0},
		{"failover after the timeout", []step{
			{0, "", "c1", "a", accepted, "", false},
			{10 * time.Second, "", "c1", "b", http.StatusAccepted, "strata-ha-replica-not-elected", false},
			{30 * time.Second, "", "c1", "b", http.StatusAccepted, "", false}, // exactly the timeout: not yet
			{31 * time.Second, "", "c1", "b", accepted, "", false},
			{32 * time.Second, "", "c1", "a", http.StatusAccepted, `elected replica ("b")`, false},
		}, 1},
		{"refresh keeps the elected replica", []step{
			{0, "", "c1", "a", accepted, "", false},
			{20 * time.Second, "", "c1", "a", accepted, "", false}, // older than the update timeout: refreshed
			{40 * time.Second, "", "c1", "b", http.StatusAccepted, "", false},
		}, 0},
		{"no refresh before the update timeout", []step{
			{0, "", "c1", "a", accepted, "", false},
			{10 * time.Second, "", "c1", "a", accepted, "", false}, // fresh: not written
			{31 * time.Second, "", "c1", "b", accepted, "", false},
		}, 1},
		{"clusters are independent", []step{
			{0, "", "c1", "a", accepted, "", false},
			{0, "", "c2", "b", accepted, "", false},
			{time.Second, "", "c2", "a", http.StatusAccepted, "", false},
		}, 0},
		{"max clusters", []step{
			{0, "", "c1", "a", accepted, "", false},
			{0, "", "c2", "a", accepted, "", false},
			{0, "", "c3", "a", http.StatusBadRequest, `HA cluster "c3" of tenant "ha" rejected: the tenant already has 2 HA clusters, limit 2 (-distributor.ha-tracker.max-clusters, override "ha_max_clusters")`, false},
			{0, "", "c1", "a", accepted, "", false},
		}, 0},
		{"tenant with HA off unaffected", []step{
			{0, "plain", "c1", "a", accepted, "", true},
			{0, "plain", "c1", "b", accepted, "", true},
		}, 0},
		{"cluster label only passes through", []step{
			{0, "", "c1", "", accepted, "", false},
		}, 0},
		{"replica label only passes through", []step{
			{0, "", "", "a", accepted, "", true},
			{0, "", "", "b", accepted, "", true},
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var now atomic.Int64
			h := newHAHarness(t, newGossipKV(t, "solo"), &now, nil)
			for i, s := range tc.steps {
				now.Store(testNow.Add(s.at).UnixNano())
				tid := s.tenant
				if tid == "" {
					tid = "ha"
				}
				before := h.ings[0].pushCount()
				code, body := h.pushAs(t, tid, haSeries(testNow.Add(s.at), "up", s.cluster, s.replica))
				require.Equal(t, s.wantCode, code, "step %d: %s", i, body)
				require.Contains(t, body, s.wantErr, "step %d", i)
				if code != accepted {
					require.Equal(t, before, h.ings[0].pushCount(), "step %d: nothing forwarded", i)
					continue
				}
				_, wr := h.ings[0].received(t)
				got := wr.Timeseries[len(wr.Timeseries)-1]
				hasReplica := false
				for _, l := range got.Labels {
					hasReplica = hasReplica || l.Name == "__replica__"
				}
				require.Equal(t, s.wantReplicaLabel, hasReplica, "step %d: %v", i, got.Labels)
			}
			require.Equal(t, tc.wantChanges, testutil.ToFloat64(h.d.ha.m.changes.WithLabelValues("ha", "c1")))
		})
	}
}

// TestHADedupStripsReplica: both replicas of a pair, each while elected,
// write the very same series; the metrics count what was kept and dropped.
func TestHADedupStripsReplica(t *testing.T) {
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	h := newHAHarness(t, newGossipKV(t, "solo"), &now, nil)
	push := func(at time.Duration, replica string) int {
		now.Store(testNow.Add(at).UnixNano())
		ts := testNow.Add(at)
		code, body := h.pushAs(t, "ha", haSeries(ts, "up", "c1", replica), haSeries(ts, "node_load1", "c1", replica))
		require.NotEqual(t, http.StatusBadRequest, code, body)
		return code
	}
	require.Equal(t, http.StatusNoContent, push(0, "a"))
	require.Equal(t, http.StatusAccepted, push(time.Second, "b"))
	require.Equal(t, http.StatusNoContent, push(time.Minute, "b")) // failover
	_, wr := h.ings[0].received(t)
	require.Len(t, wr.Timeseries, 4)
	for i := range 2 {
		require.Equal(t, wr.Timeseries[i].Labels, wr.Timeseries[i+2].Labels, "series %d is the same from both replicas", i)
	}
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "cluster", Value: "c1"}, {Name: "job", Value: "node"}}, wr.Timeseries[0].Labels)

	require.Equal(t, 4.0, testutil.ToFloat64(h.d.ha.m.kept.WithLabelValues("ha", "c1")))
	require.Equal(t, 2.0, testutil.ToFloat64(h.d.ha.m.deduped.WithLabelValues("ha", "c1")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.d.ha.m.changes.WithLabelValues("ha", "c1")))
	require.Equal(t, 4.0, testutil.ToFloat64(h.d.m.receivedSamples.WithLabelValues("ha")), "dropped samples are not received")
}

// TestHADedupInconsistentReplica: a series of another replica in a kept
// request is rejected (400, named), the rest stored without the label.
func TestHADedupInconsistentReplica(t *testing.T) {
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	h := newHAHarness(t, newGossipKV(t, "solo"), &now, nil)
	code, body := h.pushAs(t, "ha",
		haSeries(testNow, "up", "c1", "a"),
		haSeries(testNow, "other", "c1", "b"),
		haSeries(testNow, "own_cluster", "elsewhere", "a"), // a target's own cluster label: kept
	)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `has __replica__="b", but the request's first series has __replica__="a"`)
	require.Contains(t, body, idHAReplicaMixed)
	_, wr := h.ings[0].received(t)
	require.Len(t, wr.Timeseries, 2)
	require.Equal(t, "own_cluster", wr.Timeseries[1].Labels[0].Value)
	require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.discardedSamples.WithLabelValues("ha", idHAReplicaMixed)))
}

// TestHADedupAcrossDistributors: two distributors, each with its own gossip
// KV on loopback, joined: an election made through one is obeyed by the
// other, and so is a failover.
func TestHADedupAcrossDistributors(t *testing.T) {
	// The gossip KV expires entries by the real clock (tombstone TTL), so
	// this test's clock starts at the real time, not at the fixed testNow:
	// entries stamped with a date weeks old were dropped on arrival.
	start := time.Now().UTC().Truncate(time.Second)
	var now atomic.Int64
	now.Store(start.UnixNano())
	kv1 := newGossipKV(t, "d1")
	runGossip(t, kv1)
	kv2 := newGossipKV(t, "d2", kv1.Addr())
	runGossip(t, kv2)
	d1, d2 := newHAHarness(t, kv1, &now, nil), newHAHarness(t, kv2, &now, nil)

	elected := func(kv *gossip.KV, replica string) func() bool {
		return func() bool {
			s, _ := kv.Get(HATrackerKey).(*HAState)
			e, ok := s.get("ha", "c1")
			return ok && e.Replica == replica
		}
	}
	code, body := d1.pushAs(t, "ha", haSeries(start, "up", "c1", "a"))
	require.Equal(t, http.StatusNoContent, code, body)
	require.Eventually(t, elected(kv2, "a"), 15*time.Second, 10*time.Millisecond, "the election reaches d2")
	code, body = d2.pushAs(t, "ha", haSeries(start, "up", "c1", "b"))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Zero(t, d2.ings[0].pushCount())

	now.Store(start.Add(time.Minute).UnixNano())
	code, body = d2.pushAs(t, "ha", haSeries(start.Add(time.Minute), "up", "c1", "b"))
	require.Equal(t, http.StatusNoContent, code, body)
	require.Eventually(t, elected(kv1, "b"), 15*time.Second, 10*time.Millisecond, "the failover reaches d1")
	code, body = d1.pushAs(t, "ha", haSeries(start.Add(time.Minute), "up", "c1", "a"))
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, 1, d1.ings[0].pushCount())
}

// TestHADedupWithoutKV: with no KV, dedup is off whatever the limits say.
func TestHADedupWithoutKV(t *testing.T) {
	lim := defaultLimits()
	lim.AcceptHASamples = true
	h := newHarness(t, harnessOpts{limits: &lim})
	for _, r := range []string{"a", "b"} {
		code, body := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{haSeries(testNow, "up", "c1", r)}}))
		require.Equal(t, http.StatusNoContent, code, body)
	}
	require.Equal(t, 2, h.ings[0].pushCount())
}

func TestHTTPStatusHADeduped(t *testing.T) {
	require.Equal(t, http.StatusAccepted, httpStatus(fmt.Errorf("push: %w", &HADedupedError{Msg: "x"})))
}
