package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestClusterHungIngesterInFlight: SIGSTOP one of 3 ingesters (RF=3, a
// write acknowledged by 2) while reads are running and before any ring
// sees it unhealthy (the heartbeat timeout is 10 minutes here, so every
// read is sent to it and hangs there, like one in flight when it stopped).
// Each read must still answer every acknowledged sample, well before
// -querier.timeout (60 s) and without a warning: the other two replicas
// cover every series, and the hung one is canceled after the straggler
// grace and counted. A read that waited for it would end with the timeout,
// or (sooner, here about 20-40 s) when gRPC keepalive or memberlist give up
// on its connection, with a warning that it failed.
func TestClusterHungIngesterInFlight(t *testing.T) {
	const querierTimeout = time.Minute
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: clusterBinary(t),
		Args: []string{
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=10m",
			"-querier.timeout=" + querierTimeout.String(),
		},
	})
	waitActive(context.Background(), t, clusterObservers(c), c.ByRole(procs.RoleIngester), 30*time.Second)
	l := newClusterLoad(t, c)
	// Longer than -querier.timeout: a read that waits for the hung
	// ingester fails with the querier's own timeout, not the client's.
	l.querier = l.querier.withTimeout(2 * querierTimeout)
	querier := newClient(c.ByRole(procs.RoleQuerier)[0].URL())
	l.start(t)
	l.waitAcked(t, 50, 3, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	canceled := func() float64 {
		t.Helper()
		v, err := querier.metric(ctx, "strata_querier_ingester_stragglers_total", map[string]string{"rpc": "QueryStream", "outcome": "canceled"})
		require.NoError(t, err)
		return v
	}
	canceledBefore := canceled()

	victim := c.ByRole(procs.RoleIngester)[1]
	require.NoError(t, victim.Signal(syscall.SIGSTOP))
	t.Cleanup(func() { _ = victim.Signal(syscall.SIGCONT) })
	stoppedAt, readsAtStop := l.acked.Load(), l.reads.Load()
	t.Logf("%s stopped after %d acknowledged rounds, %d reads", victim.Name, stoppedAt, readsAtStop)

	evalT := time.UnixMilli(l.base + clusterMaxRounds*clusterStep)
	for i := range 5 {
		acked := int(l.acked.Load())
		start := time.Now()
		b, err := l.querier.ok(ctx, http.MethodPost, "/api/v1/query", queryParams(l.countQuery(), evalT), nil)
		require.NoError(t, err, "read %d with %s stopped", i, victim.Name)
		took := time.Since(start)
		res, err := decodeAPIResult(b)
		require.NoError(t, err)
		require.NoError(t, l.checkCounts(res, acked), "read %d with %s stopped", i, victim.Name)
		require.Less(t, took, querierTimeout, "read %d waited for the stopped ingester", i)
		// Without warnings: the stopped ingester was canceled as a
		// straggler, not waited for until its connection failed (gRPC
		// keepalive, memberlist) and then reported as a failed replica.
		var w struct{ Warnings []string }
		require.NoError(t, json.Unmarshal(b, &w))
		require.Empty(t, w.Warnings, "read %d", i)
		t.Logf("read %d with %s stopped: complete in %s (-querier.timeout %s)", i, victim.Name, took.Round(time.Millisecond), querierTimeout)
	}
	// Writes go on (2 of 3 acknowledge), and so do the background reads,
	// those in flight when it stopped included.
	l.waitAcked(t, stoppedAt+100, readsAtStop+10, 2*querierTimeout)
	l.stopAndWait()
	l.requireReadsOK(t)
	require.Positive(t, canceled()-canceledBefore, "the stopped ingester's calls were canceled as stragglers")
	// Every acknowledged sample, exactly once, from the two that answer.
	l.verifyExactlyOnce(t)

	require.NoError(t, victim.Signal(syscall.SIGCONT))
	l.verifyExactlyOnce(t)
	require.Empty(t, c.Exited(), "processes that exited")
}
