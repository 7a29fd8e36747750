package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// HA-pair dedup with real processes: two Debian Prometheus
// servers scrape one node_exporter every second as an HA pair (external
// labels cluster="ha-1", __replica__="r1" / "r2") and remote-write to a
// cluster of 3 ingesters (RF=3), 2 distributors and a querier, each replica
// to a different distributor, so the election can only be shared through
// the gossiped HA state. r1 starts first and is elected; r2 gets 202s;
// then the elected replica is killed with SIGKILL and the other takes over
// after the failover timeout.
const (
	haCluster = "ha-1"
	haTenant  = "anonymous" // multi-tenancy is off
	// The elected replica's last-seen time is refreshed by a request at
	// least update + jitter after the last refresh, so with one request per
	// second the other distributor's copy is at most 2.5s old plus a gossip
	// round: failover 6s leaves 3.5s for gossip while both replicas run.
	haFailover      = 6 * time.Second
	haUpdate        = time.Second
	haUpdateJitter  = 500 * time.Millisecond
	haScrape        = time.Second
	haBatchDeadline = time.Second // procs' remote_write batch_send_deadline
	// haSlack covers what the timeouts do not: a scrape's duration, the
	// WAL watcher, the HTTP round trip and a gossip round on a loaded
	// 2-core machine.
	haSlack = 2 * time.Second
	// haMaxGap bounds the failover gap in the stored series. With one
	// remote-write shard each replica sends one request per
	// batch_send_deadline holding the samples scraped since the last one.
	// Say the elected replica's last request reached its distributor at L:
	// its newest sample is newer than L - scrape interval. The survivor is
	// elected by its first request after L + failover timeout (the
	// gossiped last-seen time is at most L, refreshed only every update
	// timeout, which can only make failover earlier), and that request
	// comes at most a batch_send_deadline later; it holds the survivor's
	// samples of up to then. So the gap is at most failover + batch
	// deadline + scrape interval, plus haSlack.
	haMaxGap = haFailover + haBatchDeadline + haScrape + haSlack
	// haSelector is the compared series: one sample per scrape whose value
	// (the scrape's duration) differs between the replicas, at timestamps
	// in each replica's own scrape phase (Prometheus seeds the phase with
	// the external labels), so a sample names its replica.
	haSelector = `scrape_duration_seconds{job="node"}`
)

// haReplica is one Prometheus of the HA pair and the distributor it writes to.
type haReplica struct {
	name string // its __replica__
	dist *procs.Node
	prom *procs.Prometheus
}

func (r *haReplica) distMetric(ctx context.Context, name string) (float64, error) {
	return newClient(r.dist.URL()).metric(ctx, name, map[string]string{"tenant": haTenant, "cluster": haCluster})
}

// TestHAPairFailover: only the elected replica's samples are stored, with
// __replica__ removed and cluster kept; the other replica is answered 202
// (a success to it: no errors, no retries); after the elected one is
// killed the other takes over, and the stored series is exactly one
// replica's samples at every moment, without loss besides the failover
// gap, which is at most haMaxGap.
func TestHAPairFailover(t *testing.T) {
	bin := clusterBinary(t)
	procs.LookPathT(t, "prometheus", "prometheus")
	procs.LookPathT(t, "prometheus-node-exporter", "prometheus-node-exporter")
	testStart := time.Now()
	c := startHACluster(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dists := c.ByRole(procs.RoleDistributor)
	querier := newClient(c.ByRole(procs.RoleQuerier)[0].URL())
	ne := procs.StartNodeExporterT(t)
	replicas := []*haReplica{{name: "r1", dist: dists[0]}, {name: "r2", dist: dists[1]}}
	stored := func(ctx context.Context, at time.Time) (labels.Labels, []point, error) {
		r, err := querier.query(ctx, haRangeQuery(testStart, at), at)
		if err != nil {
			return labels.EmptyLabels(), nil, err
		}
		return onlySeries(r)
	}
	// waitStored polls until the stored series has a sample after t.
	waitStored := func(what string, after time.Time, timeout time.Duration) {
		t.Helper()
		poll(ctx, t, "wait for "+what, timeout, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
			_, ps, err := stored(ctx, time.Now())
			if err != nil {
				return false, err.Error()
			}
			if len(ps) == 0 || ps[len(ps)-1].T <= after.UnixMilli() {
				return false, fmt.Sprintf("%d stored samples, none after %s", len(ps), after.Format(time.StampMilli))
			}
			return true, ""
		})
	}

	// r1 alone first: it is elected by its first request (two replicas
	// starting at once may both be kept for a gossip round, as ha.go says;
	// that is not what this test is about).
	replicas[0].prom = startHAReplica(t, replicas[0].name, replicas[0].dist, ne)
	waitStored("the first replica's samples", testStart, time.Minute)
	// r2 starts once its distributor has the election from gossip.
	poll(ctx, t, "the election on "+dists[1].Name, 0, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		n, err := newClient(dists[1].URL()).metric(ctx, "strata_distributor_ha_tracked_clusters", nil)
		if err != nil {
			return false, err.Error()
		}
		return n >= 1, fmt.Sprintf("strata_distributor_ha_tracked_clusters is %v, want at least 1", n)
	})
	replicas[1].prom = startHAReplica(t, replicas[1].name, replicas[1].dist, ne)
	bothUp := time.Now()

	// Which replica is elected: the other one's distributor drops its
	// samples with 202.
	var elected, survivor *haReplica
	poll(ctx, t, "wait for one replica to be answered 202", 0, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		var reasons []string
		for i, r := range replicas {
			n, err := r.distMetric(ctx, "strata_distributor_ha_deduped_samples_total")
			if err != nil {
				return false, err.Error()
			}
			if n > 0 {
				elected, survivor = replicas[1-i], r
				return true, ""
			}
			reasons = append(reasons, fmt.Sprintf("%s: %v deduped", r.dist.Name, n))
		}
		return false, strings.Join(reasons, ", ")
	})
	t.Logf("elected %s (writes to %s), standby %s (writes to %s)", elected.name, elected.dist.Name, survivor.name, survivor.dist.Name)
	// Both run beyond the failover timeout, through several refreshes of
	// the election: a refresh that did not reach the other distributor
	// would show as a premature failover.
	waitStored("both replicas running beyond the failover timeout", bothUp.Add(haFailover+2*haUpdate), time.Minute)

	// The standby was answered 202 and took it as success: no failed or
	// retried sample, no remote-write warning in its log.
	n, err := newClient(survivor.dist.URL()).metric(ctx, "strata_distributor_push_duration_seconds_count", map[string]string{"code": "202"})
	require.NoError(t, err)
	require.Positive(t, n, "%s answered no push of %s with 202", survivor.dist.Name, survivor.name)
	n, err = elected.distMetric(ctx, "strata_distributor_ha_deduped_samples_total")
	require.NoError(t, err)
	require.Zero(t, n, "the elected replica %s was deduplicated on %s", elected.name, elected.dist.Name)
	n, err = elected.distMetric(ctx, "strata_distributor_ha_kept_samples_total")
	require.NoError(t, err)
	require.Positive(t, n, "no sample of the elected replica %s kept on %s", elected.name, elected.dist.Name)
	requireRemoteWriteClean(ctx, t, survivor)

	killedAt := time.Now()
	require.NoError(t, elected.prom.Kill())
	t.Logf("kill -9 %s at +%s", elected.name, killedAt.Sub(testStart).Round(time.Millisecond))
	waitStored("the survivor's samples after the failover", killedAt, time.Minute)
	failedOver := time.Now()
	t.Logf("survivor's samples stored %s after the kill", failedOver.Sub(killedAt).Round(time.Millisecond))
	// A few more of the survivor's samples, so its run is checked too.
	waitStored("more of the survivor's samples", failedOver.Add(2*haScrape), time.Minute)

	// The end of the comparison: once the survivor has scraped past it,
	// its TSDB holds all its samples up to end; Strata then catches up.
	end := time.Now()
	survivorAPI := newClient(survivor.prom.URL)
	var survPts []point
	poll(ctx, t, "the survivor's samples past the end", 0, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		now := time.Now()
		r, err := survivorAPI.query(ctx, haRangeQuery(testStart, now), now)
		if err != nil {
			return false, err.Error()
		}
		_, ps, err := onlySeries(r)
		if err != nil {
			return false, err.Error()
		}
		if len(ps) == 0 || ps[len(ps)-1].T <= end.UnixMilli() {
			return false, "the survivor has not scraped past the end yet"
		}
		survPts = upTo(ps, end.UnixMilli())
		return true, ""
	})
	var storedLabels labels.Labels
	var storedPts []point
	poll(ctx, t, "the stored series up to the survivor's last sample", 0, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		var err error
		storedLabels, storedPts, err = stored(ctx, end)
		if err != nil {
			return false, err.Error()
		}
		last := survPts[len(survPts)-1]
		if len(storedPts) == 0 || storedPts[len(storedPts)-1].T < last.T {
			return false, fmt.Sprintf("%d stored samples, the survivor's last (t=%d) not yet", len(storedPts), last.T)
		}
		return true, ""
	})

	// The elected replica's samples: every sample it sent is in its WAL
	// (remote-write reads the WAL), so a Prometheus started on its data
	// dir without scrape jobs serves all of them.
	reopened, err := procs.StartPrometheus(ctx, elected.prom.Dir, procs.PrometheusConfig{})
	require.NoError(t, err, "reopen the killed replica's TSDB")
	t.Cleanup(func() {
		if err := reopened.Stop(10 * time.Second); err != nil {
			t.Logf("stop reopened prometheus: %v", err)
		}
	})
	r, err := newClient(reopened.URL).query(ctx, haRangeQuery(testStart, end), end)
	require.NoError(t, err)
	_, electedPts, err := onlySeries(r)
	require.NoError(t, err)
	require.NotEmpty(t, electedPts, "the killed replica's TSDB has no %s", haSelector)

	// The stored series: the pair's labels without the replica label.
	want := labels.FromStrings("__name__", "scrape_duration_seconds", "job", "node", "instance", ne.Addr, "cluster", haCluster)
	require.Equal(t, want.String(), storedLabels.String(), "labels of the stored series")
	v := checkHAStored(storedPts, electedPts, survPts, haMaxGap)
	t.Logf("stored %d samples: %d of %s (of %d in its TSDB), then %d of %s (of %d); failover gap %dms (t=%d..%d, kill at %d), bound %s",
		len(storedPts), v.electedRun, elected.name, len(electedPts), v.survivorRun, survivor.name, len(survPts),
		v.gap, v.lastElected, v.firstSurv, killedAt.UnixMilli(), haMaxGap)
	require.Empty(t, v.problems, "stored %s against the replicas' own samples", haSelector)

	// No series kept the replica label; the cluster label is on all of them.
	res, err := querier.query(ctx, `count({__replica__=~".+"})`, end)
	require.NoError(t, err)
	require.Empty(t, res.Series, "series stored with __replica__")
	res, err = querier.query(ctx, `count({__name__=~".+"}) - count({cluster="`+haCluster+`"})`, end)
	require.NoError(t, err)
	require.Len(t, res.Series, 1)
	require.Zero(t, res.Series[0].Points[0].V, "series stored without cluster=%q", haCluster)

	// Exactly one failover, made by the survivor's distributor.
	for _, r := range replicas {
		n, err := r.distMetric(ctx, "strata_distributor_ha_elected_replica_changes_total")
		require.NoError(t, err)
		want := 0.0
		if r == survivor {
			want = 1
		}
		require.Equal(t, want, n, "failovers counted by %s", r.dist.Name)
	}
	// After the failover the survivor's pushes reach the ingesters, where
	// a loaded machine may legitimately cause a retried 5xx: logged only.
	for _, m := range []string{"prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_samples_retried_total"} {
		n, err := newClient(survivor.prom.URL).metric(ctx, m, nil)
		require.NoError(t, err)
		t.Logf("%s of %s after the failover: %v", m, survivor.name, n)
	}
	require.Empty(t, c.Exited(), "strata processes that exited")
	t.Logf("took %s", time.Since(testStart).Round(time.Millisecond))
}

// TestHAStoredCheck: checkHAStored finds each way a stored series can
// break HA dedup. Replica a scrapes at 0, 1000, ...; b at 500, 1500, ...
func TestHAStoredCheck(t *testing.T) {
	pts := func(from, to, phase int64) []point {
		var ps []point
		for ts := from*1000 + phase; ts <= to*1000+phase; ts += 1000 {
			ps = append(ps, point{T: ts, V: float64(ts) + float64(phase)/1e6})
		}
		return ps
	}
	cat := func(parts ...[]point) []point {
		var out []point
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	a, b := pts(0, 20, 0), pts(0, 30, 500) // a dies after 20s
	for _, tc := range []struct {
		name    string
		stored  []point
		wantErr string
	}{
		{"ok", cat(a, pts(26, 30, 500)), ""},
		{"gap too long", cat(a, pts(29, 30, 500)), "failover gap 9500ms"},
		{"interleaved", cat(a[:11], pts(10, 10, 500), a[11:], pts(26, 30, 500)), "interleave"},
		{"back to elected", cat(a[:5], pts(5, 8, 500), a[9:], pts(26, 30, 500)), "interleave"},
		{"foreign sample", cat(a, []point{{T: 20700, V: 1}}, pts(26, 30, 500)), "from neither replica"},
		{"value differs", cat(a[:3], []point{{T: 3000, V: 1}}, a[4:], pts(26, 30, 500)), "from neither replica"},
		{"elected sample lost", cat(a[:3], a[4:], pts(26, 30, 500)), "sample t=3000 is not stored"},
		{"elected start lost", cat(a[2:], pts(26, 30, 500)), "sample t=0 is not stored"},
		{"survivor sample lost", cat(a, pts(26, 27, 500), pts(29, 30, 500)), "sample t=28500 is not stored"},
		{"survivor end missing", cat(a, pts(26, 29, 500)), "sample t=30500 is not stored"},
		{"no failover", a, "no failover"},
		{"survivor only", pts(0, 30, 500), "no stored sample of the elected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := checkHAStored(tc.stored, a, b, 7*time.Second)
			got := strings.Join(v.problems, "\n")
			if tc.wantErr == "" {
				require.Empty(t, got)
				return
			}
			require.Contains(t, got, tc.wantErr)
		})
	}
}

// startHACluster starts 3 ingesters in 3 zones (RF=3), 2 distributors and
// a querier with HA dedup on for every tenant and short HA timeouts.
func startHACluster(t *testing.T, bin string) *procs.Cluster {
	t.Helper()
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: bin,
		Args: []string{
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=4s",
			"-memberlist.rejoin-interval=1s",
			"-memberlist.pull-push-interval=2s",
			"-distributor.ha-tracker.enable-for-all-users=true",
			"-distributor.ha-tracker.failover-timeout=" + haFailover.String(),
			"-distributor.ha-tracker.update-timeout=" + haUpdate.String(),
			"-distributor.ha-tracker.update-timeout-jitter-max=" + haUpdateJitter.String(),
		},
	})
	waitActive(context.Background(), t, clusterObservers(c), c.ByRole(procs.RoleIngester), 30*time.Second)
	return c
}

// startHAReplica starts one Prometheus of the HA pair: node_exporter
// scraped every haScrape, remote-write with one shard to dist.
func startHAReplica(t *testing.T, name string, dist *procs.Node, ne *procs.NodeExporter) *procs.Prometheus {
	t.Helper()
	return procs.StartPrometheusT(t, procs.PrometheusConfig{
		ScrapeInterval:       haScrape,
		ExternalLabels:       map[string]string{"cluster": haCluster, "__replica__": name},
		Jobs:                 []procs.ScrapeJob{{Name: "node", Targets: []string{ne.Addr}}},
		RemoteWriteURL:       dist.URL() + "/api/v1/push",
		RemoteWriteMaxShards: 1,
	})
}

// haRangeQuery selects haSelector's raw samples from before from until at.
func haRangeQuery(from, at time.Time) string {
	return haSelector + "[" + strconv.Itoa(int(at.Sub(from)/time.Second)+60) + "s]"
}

// requireRemoteWriteClean checks that r's Prometheus sent everything
// without a failure or retry, and logged no remote-write warning or error:
// a 202 is a success to it.
func requireRemoteWriteClean(ctx context.Context, t *testing.T, r *haReplica) {
	t.Helper()
	for _, m := range []string{"prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_samples_retried_total"} {
		n, err := newClient(r.prom.URL).metric(ctx, m, nil)
		require.NoError(t, err)
		require.Zero(t, n, "%s of %s", m, r.name)
	}
	n, err := newClient(r.prom.URL).metric(ctx, "prometheus_remote_storage_samples_total", nil)
	require.NoError(t, err)
	require.Positive(t, n, "prometheus_remote_storage_samples_total of %s", r.name)
	lines, err := remoteWriteTrouble(r.prom.LogPath)
	require.NoError(t, err)
	require.Empty(t, lines, "remote-write warnings and errors in the log of %s", r.name)
}
