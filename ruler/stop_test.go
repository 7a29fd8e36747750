package ruler

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/ring"
)

// staleMarkers returns the series tr pushed stale markers for: the
// metric name, or ALERTS/<alertname> and ALERTS_FOR_STATE/<alertname>.
func (tr *testRuler) staleMarkers() map[string]bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]bool{}
	for _, p := range tr.pushes {
		for _, s := range p.Series {
			if len(s.Samples) != 1 || !value.IsStaleNaN(s.Samples[0].Value) {
				continue
			}
			var name, alert string
			for _, l := range s.Labels {
				switch l.Name {
				case labels.MetricName:
					name = l.Value
				case labels.AlertName:
					alert = l.Value
				}
			}
			if alert != "" {
				name += "/" + alert
			}
			out[name] = true
		}
	}
	return out
}

func (tr *testRuler) tenantCount() int {
	tr.Ruler.mu.Lock()
	defer tr.Ruler.mu.Unlock()
	return len(tr.tenants)
}

// TestDeletedGroupWritesStaleMarkers: deleting a rule group, the
// tenant's last one too, writes staleness markers for its recorded
// series and its ALERTS, as Prometheus does when a group leaves its rule
// files; then the tenant's evaluation stops.
func TestDeletedGroupWritesStaleMarkers(t *testing.T) {
	st := teststorage.New(t)
	tr := newTestRuler(t, st, objstore.NewInMemBucket())
	stop := tr.run(t)
	defer stop()
	for _, g := range []string{"name: one\ninterval: 100ms\nrules:\n- record: rec_one\n  expr: vector(1)\n- alert: One\n  expr: vector(1)\n",
		"name: last\ninterval: 100ms\nrules:\n- record: rec_last\n  expr: vector(2)\n"} {
		code, body := tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", g)
		require.Equal(t, http.StatusAccepted, code, body)
	}
	eventually(t, "both groups' series", func() bool {
		return len(queryNow(t, st, "rec_one")) == 1 && len(queryNow(t, st, "rec_last")) == 1 && len(queryNow(t, st, `ALERTS{alertname="One"}`)) == 1
	})
	require.Empty(t, tr.staleMarkers())

	code, body := tr.request(t, http.MethodDelete, "/config/v1/rules/ns/one", "team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "stale markers of the deleted group", func() bool {
		m := tr.staleMarkers()
		return m["rec_one"] && m["ALERTS/One"]
	})
	require.Empty(t, queryNow(t, st, "rec_one"))
	require.False(t, tr.staleMarkers()["rec_last"])

	code, body = tr.request(t, http.MethodDelete, "/config/v1/rules/ns/last", "team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "stale markers of the tenant's last group", func() bool { return tr.staleMarkers()["rec_last"] })
	require.Empty(t, queryNow(t, st, "rec_last"))
	eventually(t, "the tenant's evaluation stopped", func() bool { return tr.tenantCount() == 0 })
}

// TestMovedGroupsWriteNoStaleMarkers: groups that move to another ruler
// (this one leaves the ring) are not marked stale by the ruler they
// left: the new owner writes their series.
func TestMovedGroupsWriteNoStaleMarkers(t *testing.T) {
	p := startRulerPair(t)
	defer p.stopB()
	for _, g := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		code, body := p.a.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", "name: "+g+"\ninterval: 100ms\nrules:\n- record: rec_"+g+"\n  expr: vector(1)\n- alert: A"+g+"\n  expr: vector(1)\n")
		require.Equal(t, http.StatusAccepted, code, body)
	}
	eventually(t, "both rulers evaluating", func() bool {
		return len(p.a.localStates("team-a")) > 0 && len(p.b.localStates("team-a")) > 0
	})
	require.NoError(t, p.ring.Update(context.Background(), func(d *ring.Desc) bool {
		in := d.Instances["ruler-b"]
		in.State = ring.Leaving
		d.Instances["ruler-b"] = in
		return true
	}))
	eventually(t, "ruler a evaluating every group", func() bool { return len(p.a.localStates("team-a")) == 8 })
	// Ruler b stops the tenant once the markers would have been written.
	eventually(t, "ruler b done with the tenant", func() bool { return p.b.tenantCount() == 0 })
	require.Empty(t, p.b.staleMarkers(), "stale markers written by the ruler the groups left")
	require.Empty(t, p.a.staleMarkers())
}

// TestStoppedTenantDrainsInBackground: a tenant stopped on a ruler whose
// Alertmanager does not answer sends its queue in the background: the
// ruler's sync loop goes on (another tenant's new group is evaluated)
// while the queue waits.
func TestStoppedTenantDrainsInBackground(t *testing.T) {
	release := make(chan struct{})
	am := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer am.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	st := teststorage.New(t)
	tr := newTestRuler(t, st, objstore.NewInMemBucket(), func(c *Config, _ *Deps) {
		c.AlertmanagerURL = am.URL
		c.NotificationTimeout, c.NotificationDrainTimeout = time.Hour, time.Hour
		c.ResendDelay = 0 // every evaluation queues the alert again
	})
	stop := tr.run(t)
	code, body := tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", "name: g\ninterval: 100ms\nrules:\n- alert: A\n  expr: vector(1)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "alerts queued behind the Alertmanager that does not answer", func() bool {
		n, err := testutil.GatherAndCount(tr.reg, "strata_ruler_notifications_queue_length")
		return err == nil && n == 1 && testutil.ToFloat64(metricOf(t, tr.reg, "strata_ruler_notifications_queue_length", "team-a")) > 1
	})
	code, body = tr.request(t, http.MethodDelete, "/config/v1/rules/ns/g", "team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "the tenant's notifier draining", func() bool { return testutil.ToFloat64(tr.m.draining) == 1 })

	code, body = tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-b", "name: g\ninterval: 100ms\nrules:\n- record: rec_b\n  expr: vector(1)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "another tenant's group evaluated meanwhile", func() bool { return len(queryNow(t, st, "rec_b")) == 1 })
	require.Equal(t, 1.0, testutil.ToFloat64(tr.m.draining), "the drain ended, yet the Alertmanager never answered")

	close(release)
	released = true
	eventually(t, "the drain done", func() bool { return testutil.ToFloat64(tr.m.draining) == 0 })
	require.Zero(t, testutil.ToFloat64(tr.m.drainTimeouts))
	stop()
}

// TestNotifierDrainIsBounded: a notifier whose Alertmanager never answers
// stops within its drain timeout, dropping its queue.
func TestNotifierDrainIsBounded(t *testing.T) {
	release, asked := make(chan struct{}), make(chan struct{}, 1)
	am := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-release
	}))
	defer am.Close()
	defer close(release)
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	cfg.NotificationTimeout = time.Hour
	reg := prometheus.NewRegistry()
	n, err := newTenantNotifier("team-a", am.URL, cfg, notifierDeps{reg: reg, log: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	n.start()
	eventually(t, "the Alertmanager to be known", func() bool { return len(n.mgr.Alertmanagers()) == 1 })
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "A"), StartsAt: time.Now()})
	<-asked // the send loop waits for the Alertmanager; the next alert waits in the queue
	n.mgr.Send(&notifier.Alert{Labels: labels.FromStrings("alertname", "B"), StartsAt: time.Now()})
	require.False(t, n.stop(100*time.Millisecond), "an Alertmanager that never answers took the queue")
}

// fakeResolver answers A/AAAA and SRV lookups from maps.
type fakeResolver struct {
	hosts map[string][]string
	srvs  map[string][]*net.SRV
}

func (f fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := f.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	if service != "" || proto != "" {
		return "", nil, &net.DNSError{Err: "want the whole name", Name: name}
	}
	if s, ok := f.srvs[name]; ok {
		return name, s, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TestAlertmanagerDiscovery: dns+ URLs go to every address of their name
// (A/AAAA), dnssrv+ URLs to every target and port of their name's SRV
// records, other URLs as written.
func TestAlertmanagerDiscovery(t *testing.T) {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	res := fakeResolver{
		hosts: map[string][]string{"am.example": {"127.0.0.2", "::1"}},
		srvs: map[string][]*net.SRV{"_web._tcp.am.example": {
			{Target: "am-0.am.example.", Port: 9093}, {Target: "am-1.am.example.", Port: 9094},
		}},
	}
	n, err := newTenantNotifier("team-a", "dns+http://am.example:9093,dnssrv+https://_web._tcp.am.example/prefix,http://127.0.0.1:9093,dnssrv+http://missing.example", cfg,
		notifierDeps{reg: prometheus.NewRegistry(), log: slog.New(slog.DiscardHandler), resolver: res})
	require.NoError(t, err)
	got := map[string][]string{}
	for key, tgs := range n.targets(context.Background()) {
		for _, tg := range tgs {
			for _, tgt := range tg.Targets {
				got[key] = append(got[key], string(tgt["__address__"]))
			}
		}
		slices.Sort(got[key])
	}
	require.Equal(t, map[string][]string{
		"config-0": {"127.0.0.2:9093", "[::1]:9093"},
		"config-1": {"am-0.am.example:9093", "am-1.am.example:9094"},
		"config-2": {"127.0.0.1:9093"},
	}, got)

	for _, tc := range []struct{ in, wantErr string }{
		{"dnssrv+http://_web._tcp.am.example", ""},
		{"dns+https://am.example:9093/prefix", ""},
		{"dnssrv+http://_web._tcp.am.example:9093", "takes its ports from the SRV records"},
		{"dnssrv+ftp://am.example", "not an http(s) URL"},
		{"srv+http://am.example", "not an http(s) URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := parseAlertmanagerURLs(tc.in)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// slowQueryable blocks a select of slow_metric while slow is set (within
// its context), first saying so on blocked.
type slowQueryable struct {
	storage.Queryable
	slow    *atomic.Bool
	blocked chan struct{}
}

func (q slowQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	in, err := q.Queryable.Querier(mint, maxt)
	return slowQuerier{Querier: in, q: q}, err
}

type slowQuerier struct {
	storage.Querier
	q slowQueryable
}

func (q slowQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.q.slow.Load() && slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Matches("slow_metric") && m.Name == labels.MetricName }) {
		select {
		case q.q.blocked <- struct{}{}:
		default:
		}
		select {
		case <-time.After(3 * time.Second):
		case <-ctx.Done():
		}
	}
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

// TestDeletedGroupMarkedStaleDespiteNextUpload: the tenant's last group
// is deleted while an evaluation of it is slow (removing it waits for
// that evaluation), and another tenant uploads a group right after: the
// sync that upload prompts does not stop the tenant's manager before its
// staleness markers are written.
func TestDeletedGroupMarkedStaleDespiteNextUpload(t *testing.T) {
	st := teststorage.New(t)
	slow := slowQueryable{Queryable: st, slow: &atomic.Bool{}, blocked: make(chan struct{}, 1)}
	tr := newTestRuler(t, st, objstore.NewInMemBucket(), func(_ *Config, d *Deps) {
		d.Queryable = func(string) storage.Queryable { return slow }
	})
	stop := tr.run(t)
	defer stop()
	code, body := tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", "name: gone\ninterval: 100ms\nrules:\n- record: rec_gone\n  expr: vector(1)\n- record: rec_slow\n  expr: count(slow_metric)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "the group's series", func() bool { return len(queryNow(t, st, "rec_gone")) == 1 })

	slow.slow.Store(true)
	select {
	case <-slow.blocked:
	case <-time.After(time.Minute):
		t.Fatal("no evaluation of the group reached slow_metric")
	}
	code, body = tr.request(t, http.MethodDelete, "/config/v1/rules/ns/gone", "team-a", "")
	require.Equal(t, http.StatusAccepted, code, body)
	code, body = tr.request(t, http.MethodPost, "/config/v1/rules/ns", "team-b", "name: other\ninterval: 100ms\nrules:\n- record: rec_other\n  expr: vector(1)\n")
	require.Equal(t, http.StatusAccepted, code, body)
	eventually(t, "team-b's group evaluated", func() bool { return len(tr.localStates("team-b")) == 1 })
	// Either the markers come, or team-a's manager was stopped first.
	eventually(t, "stale markers or team-a stopped", func() bool {
		return tr.staleMarkers()["rec_gone"] || tr.tenantCount() < 2
	})
	require.True(t, tr.staleMarkers()["rec_gone"], "team-a's manager stopped before the deleted group's staleness markers were written")
}
