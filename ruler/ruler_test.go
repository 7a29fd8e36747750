package ruler

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/tenant"
)

// testRuler is a Ruler over a real TSDB: its queries read it and its
// pushes append to it, each push recorded.
type testRuler struct {
	*Ruler
	st  *teststorage.TestStorage
	srv *httptest.Server
	reg *prometheus.Registry

	mu     sync.Mutex
	pushes []*remotewrite.Request
}

type muxRouter struct{ mux *http.ServeMux }

func (m muxRouter) Handle(pattern, _ string, h http.Handler) { m.mux.Handle(pattern, h) }

// newTestRuler returns a ruler over st and bkt; opts change its config
// and dependencies before it is made.
func newTestRuler(t *testing.T, st *teststorage.TestStorage, bkt objstore.Bucket, opts ...func(*Config, *Deps)) *testRuler {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.PollInterval = time.Hour // uploads resync at once
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	tr := &testRuler{st: st, reg: prometheus.NewRegistry()}
	deps := Deps{
		Store:     NewBucketStore(bkt),
		Queryable: func(string) storage.Queryable { return st },
		Push: func(ctx context.Context, tenantID string, req *remotewrite.Request) error {
			tr.mu.Lock()
			tr.pushes = append(tr.pushes, req)
			tr.mu.Unlock()
			app := st.Appender(ctx)
			for _, s := range req.Series {
				b := labels.NewScratchBuilder(len(s.Labels))
				for _, l := range s.Labels {
					b.Add(l.Name, l.Value)
				}
				b.Sort()
				for _, smp := range s.Samples {
					if _, err := app.Append(0, b.Labels(), smp.Timestamp, smp.Value); err != nil {
						_ = app.Rollback()
						return err
					}
				}
			}
			return app.Commit()
		},
		Limits:  limits.NewOverrides(l),
		Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Reg:     tr.reg,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	r, err := New(cfg, deps)
	require.NoError(t, err)
	tr.Ruler = r
	mux := http.NewServeMux()
	r.RegisterRoutes(muxRouter{mux})
	tr.srv = httptest.NewServer(mux)
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *testRuler) run(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tr.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

func (tr *testRuler) request(t *testing.T, method, path, tenantID, body string) (int, string) {
	req, err := http.NewRequest(method, tr.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set(tenant.Header, tenantID)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String()
}

func (tr *testRuler) alerts(t *testing.T, tenantID string) []*apiAlert {
	code, body := tr.request(t, http.MethodGet, "/api/v1/alerts", tenantID, "")
	require.Equal(t, http.StatusOK, code, body)
	var ans struct {
		Data struct {
			Alerts []*apiAlert `json:"alerts"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ans))
	return ans.Data.Alerts
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queryNow(t *testing.T, st *teststorage.TestStorage, q string) promql.Vector {
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := eng.NewInstantQuery(context.Background(), st, nil, q, time.Now())
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	v, err := res.Vector()
	require.NoError(t, err)
	return v
}

// TestGroupIsOnePush: an iteration of a group whose rules do not read one
// another is one push holding every rule's samples (ALERTS too).
func TestGroupIsOnePush(t *testing.T) {
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "m", "i", "1"), time.Now().UnixMilli(), 2)
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	tr := newTestRuler(t, st, objstore.NewInMemBucket())
	stop := tr.run(t)
	defer stop()
	code, body := tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", `name: g
interval: 1s
rules:
- record: a
  expr: sum(m)
- record: b
  expr: count(m)
- alert: M
  expr: sum(m) > 1
`)
	require.Equal(t, http.StatusAccepted, code, body)
	var names map[string]bool
	eventually(t, "a push with ALERTS", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, p := range tr.pushes {
			names = map[string]bool{}
			for _, s := range p.Series {
				for _, l := range s.Labels {
					if l.Name == "__name__" {
						names[l.Value] = true
					}
				}
			}
			if names["ALERTS"] {
				return true
			}
		}
		return false
	})
	require.Equal(t, map[string]bool{"a": true, "b": true, "ALERTS": true, "ALERTS_FOR_STATE": true}, names, "one push per iteration")
	require.Equal(t, 2.0, queryNow(t, st, "a")[0].F)
	require.Equal(t, 1.0, queryNow(t, st, "b")[0].F)
	as := tr.alerts(t, "team-a")
	require.Len(t, as, 1)
	require.Equal(t, "firing", as[0].State)
	require.Empty(t, tr.alerts(t, "team-b"), "another tenant sees the alert")

	// strata_ruler_*, per tenant, from upstream's per-tenant counts.
	require.Positive(t, testutil.ToFloat64(metricOf(t, tr.reg, "strata_ruler_rule_evaluations_total", "team-a")))
	require.Equal(t, 1.0, testutil.ToFloat64(metricOf(t, tr.reg, "strata_ruler_rule_groups", "team-a")))
	require.Zero(t, testutil.ToFloat64(metricOf(t, tr.reg, "strata_ruler_rule_evaluation_failures_total", "team-a")))
	n, err := testutil.GatherAndCount(tr.reg, "strata_ruler_group_last_evaluation_timestamp_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

// metricOf returns the one series of name with tenant label tenantID as a
// collector testutil can read.
func metricOf(t *testing.T, g prometheus.Gatherer, name, tenantID string) prometheus.Collector {
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "tenant") == tenantID {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return v })
			}
		}
	}
	t.Fatalf("no %s{tenant=%q}", name, tenantID)
	return nil
}

// TestForStateRestored: a ruler that takes over a group (after a restart,
// or from another ruler) resumes its pending alerts' `for` from
// ALERTS_FOR_STATE: the alert neither starts over nor fires early.
func TestForStateRestored(t *testing.T) {
	st := teststorage.New(t)
	start := time.Now()
	activeAt := start.Add(-30 * time.Minute).Truncate(time.Second)
	app := st.Appender(context.Background())
	// What the previous owner wrote, last a second ago.
	_, err := app.Append(0, labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "Pending", "severity", "page"), start.Add(-time.Second).UnixMilli(), float64(activeAt.Unix()))
	require.NoError(t, err)
	require.NoError(t, app.Commit())

	tr := newTestRuler(t, st, objstore.NewInMemBucket())
	stop := tr.run(t)
	defer stop()
	code, body := tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", `name: g
interval: 1s
rules:
- alert: Pending
  expr: vector(1)
  for: 1h
  labels: {severity: page}
`)
	require.Equal(t, http.StatusAccepted, code, body)
	var rule *apiAlert
	eventually(t, "the restored alert", func() bool {
		as := tr.alerts(t, "team-a")
		if len(as) != 1 || as[0].ActiveAt.After(start.Add(-time.Minute)) {
			return false // not evaluated, or not restored yet
		}
		rule = as[0]
		return true
	})
	require.Equal(t, "pending", rule.State, "restored half way through its hour: must not fire")
	require.True(t, rule.ActiveAt.Before(start.Add(-29*time.Minute)), "activeAt %s, want about %s", rule.ActiveAt, activeAt)
}
