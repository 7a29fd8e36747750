package clustertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/strata-metrics/strata/ring"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testSeries are 4 series of job a, one sample every 15s for 10 minutes
// before end.
func testSeries(end time.Time) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	for _, code := range []string{"200", "201", "500", "503"} {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: code}, {Name: "job", Value: "a"}}}
		for i := range 40 {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: end.Add(-time.Duration(40-i) * 15 * time.Second).UnixMilli(), Value: float64(i)})
		}
		out = append(out, s)
	}
	return out
}

// TestIngesterLifecycle runs 3 ingesters in 3 zones at RF=3: what is
// pushed through the distributor reads back through the querier exactly
// once, whichever single ingester is down, killed, restarted (same
// tokens, WAL replayed) or gone from the ring. (One failure at a time:
// RF=3 promises nothing when two of three replicas are gone.)
func TestIngesterLifecycle(t *testing.T) {
	c := Start(t, Options{Ingesters: 3, Zones: 3, ReplicationFactor: 3, StayInRingOnShutdown: true})
	end := time.Now().Truncate(time.Minute)
	from, to := end.Add(-time.Hour), end
	series := testSeries(end)
	c.Push(t, "tenant-a", series)
	require.Equal(t, series, c.Query(t, "tenant-a", `{job="a"}`, from, to))
	require.Empty(t, c.Query(t, "tenant-b", `{job="a"}`, from, to), "tenants do not see each other's series")

	checkOnce := func() {
		t.Helper()
		require.Equal(t, series, c.Query(t, "tenant-a", `{job="a"}`, from, to))
		v := c.QueryInstant(t, "tenant-a", `count_over_time(http_requests_total[2h])`, end).(promql.Vector)
		require.Len(t, v, len(series))
		for _, s := range v {
			require.Equal(t, float64(len(series[0].Samples)), s.F, "series %v: every sample once", s.Metric)
		}
		m := c.QueryRange(t, "tenant-a", `sum(http_requests_total)`, end.Add(-5*time.Minute), end, time.Minute)
		require.Len(t, m, 1)
		require.Len(t, m[0].Floats, 6)
	}
	checkOnce()

	// Killed: it never says goodbye, reads go on without it.
	c.Kill(t, "ingester-1")
	checkOnce()
	c.Restart(t, "ingester-1")
	checkOnce()

	// ingester-2 stops keeping its tokens (a StatefulSet restart): it
	// stays in the ring as LEAVING, reads go on without it, and it comes
	// back with the same tokens and its WAL replayed.
	dir := c.Instance(t, "ingester-2").Dir
	tokens, err := os.ReadFile(filepath.Join(dir, ring.TokensFileName))
	require.NoError(t, err)
	c.Stop(t, "ingester-2")
	c.WaitRing(t, "ingester-2", ring.Leaving, true)
	checkOnce()
	c.Restart(t, "ingester-2")
	c.WaitActive(t, 3)
	again, err := os.ReadFile(filepath.Join(dir, ring.TokensFileName))
	require.NoError(t, err)
	require.Equal(t, string(tokens), string(again), "same tokens after the restart")
	checkOnce()
	// ingester-3 shuts down: the other two hold every sample.
	c.Stop(t, "ingester-3")
	checkOnce()
}

// TestStopLeavesRing: by default a stopped ingester leaves the ring, and
// several distributors and queriers see one cluster.
func TestStopLeavesRing(t *testing.T) {
	c := Start(t, Options{Ingesters: 2, Distributors: 2, Queriers: 2, ReplicationFactor: 2})
	end := time.Now().Truncate(time.Minute)
	series := testSeries(end)
	c.Push(t, "tenant-a", series)
	c.Stop(t, "ingester-2")
	c.WaitRing(t, "ingester-2", ring.Left, false)
	require.Equal(t, series, c.Query(t, "tenant-a", `{job="a"}`, end.Add(-time.Hour), end), "ingester-1 holds every series at RF=2")
	// The next querier and distributor take over.
	c.Stop(t, "querier-1")
	c.Stop(t, "distributor-1")
	c.Push(t, "tenant-b", series)
	require.Equal(t, series, c.Query(t, "tenant-b", `{job="a"}`, end.Add(-time.Hour), end))
}
