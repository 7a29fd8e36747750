package e2e

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// The cluster tests run the built binary as 3 ingesters in 3 zones (RF=3),
// 2 distributors and 1 querier on loopback (internal/procs: the topology of
// `make cluster`), and break it while a writer pushes a known pattern. They
// run one after the other: each cluster is 6 processes on a 2-core machine.

// TestClusterKillIngester: kill -9 one ingester under load; writes and reads
// go on; restarted on the same data dir it replays its WAL and rejoins; at
// the end every acknowledged sample is there exactly once.
func TestClusterKillIngester(t *testing.T) {
	c := startTestCluster(t)
	l := newClusterLoad(t, c)
	l.start(t)
	l.waitAcked(t, 100, 3, 30*time.Second)

	victim := c.ByRole(procs.RoleIngester)[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// What the victim answers before the kill is committed to its WAL: it
	// must hold all of it after the restart.
	before, err := l.ingesterRounds(ctx, victim.GRPCAddr)
	require.NoError(t, err)
	require.Len(t, before, clusterSeries)
	require.NoError(t, victim.Kill())
	atKill, readsAtKill := l.acked.Load(), l.reads.Load()
	t.Logf("kill -9 %s after %d acknowledged rounds (it had answered with %d rounds of series 0)", victim.Name, atKill, len(before[0]))
	// Writes keep succeeding (maybe after retries) and reads keep answering
	// with one of three replicas gone.
	l.waitAcked(t, atKill+150, readsAtKill+10, 45*time.Second)
	l.requireReadsOK(t)

	require.NoError(t, victim.Restart(ctx))
	after, err := l.ingesterRounds(ctx, victim.GRPCAddr)
	require.NoError(t, err)
	requireKept(t, victim, before, after)
	require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), procs.InstanceIs(victim.Name, "ACTIVE", true)))
	atRejoin := l.acked.Load()
	t.Logf("%s restarted and ACTIVE after %d acknowledged rounds", victim.Name, atRejoin)
	l.waitAcked(t, atRejoin+100, 0, 30*time.Second)

	l.stopAndWait()
	l.requireReadsOK(t)
	require.Empty(t, c.Exited(), "processes that exited")
	l.verifyExactlyOnce(t)
}

// TestClusterQuorumLoss: with two of three ingesters killed no push may be
// acknowledged (5xx, never 2xx, never 4xx) and nothing crashes; with both
// back, pushes succeed again and every acknowledged sample is there once.
func TestClusterQuorumLoss(t *testing.T) {
	c := startTestCluster(t)
	l := newClusterLoad(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	round := 0
	pushOK := func() {
		t.Helper()
		l.attempted.Store(int64(round + 1))
		require.NoError(t, l.pushRound(ctx, round))
		round++
		l.acked.Store(int64(round))
	}
	for range 5 {
		pushOK()
	}

	ingesters := c.ByRole(procs.RoleIngester)
	victims := ingesters[:2]
	for _, v := range victims {
		require.NoError(t, v.Kill())
	}
	// Every push now misses its quorum: first while the ring still shows
	// the dead ingesters healthy (gRPC errors), then once they are unhealthy.
	pushFails := func(n int) {
		t.Helper()
		l.attempted.Store(int64(round + 1)) // may land on the survivor: allowed, not acknowledged
		body := l.round(round)
		for i := range n {
			dist := l.dists[i%len(l.dists)]
			url := dist.base + "/api/v1/push"
			res, err := dist.push(ctx, body)
			require.NoError(t, err, "push to %s with 2 of 3 ingesters down: the distributor must answer", url)
			require.Equal(t, 5, res.Status/100, "push %d to %s with 2 of 3 ingesters down: %d %s", i, url, res.Status, truncate(res.text(), 300))
		}
	}
	pushFails(10)
	for _, v := range victims {
		require.NoError(t, procs.WaitRing(ctx, c.ByRole(procs.RoleDistributor), procs.InstanceUnhealthy(v.Name)))
	}
	pushFails(10)
	// Reads cannot be complete with one replica: whatever the querier
	// answers, it must not crash.
	_, qerr := l.querier.query(ctx, "count("+l.metric+")", time.Now())
	t.Logf("query with 2 of 3 ingesters down: err=%v", qerr)
	exited := c.Exited()
	slices.Sort(exited)
	require.Equal(t, []string{victims[0].Name, victims[1].Name}, exited, "processes that exited")

	for _, v := range victims {
		require.NoError(t, v.Restart(ctx))
	}
	for _, v := range victims {
		require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), procs.InstanceIs(v.Name, "ACTIVE", true)))
	}
	// The round that failed goes through now (retried until acknowledged),
	// and so do the next ones.
	for range 20 {
		pushOK()
	}
	require.Empty(t, c.Exited(), "processes that exited")
	l.verifyExactlyOnce(t)
}

// TestClusterPausedIngester: an ingester stopped with SIGSTOP stops
// heartbeating and gossiping; within the heartbeat timeout every distributor
// and the querier see it unhealthy and reads and writes route around it;
// after SIGCONT it is healthy again, and nothing acknowledged is lost.
func TestClusterPausedIngester(t *testing.T) {
	c := startTestCluster(t)
	l := newClusterLoad(t, c)
	l.start(t)
	l.waitAcked(t, 50, 3, 30*time.Second)

	victim := c.ByRole(procs.RoleIngester)[2]
	require.NoError(t, victim.Signal(syscall.SIGSTOP))
	t.Cleanup(func() { _ = victim.Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), procs.InstanceUnhealthy(victim.Name)))
	atUnhealthy, readsAtUnhealthy := l.acked.Load(), l.reads.Load()
	t.Logf("%s paused, unhealthy everywhere after %d acknowledged rounds", victim.Name, atUnhealthy)
	// New reads skip the unhealthy ingester and see every acknowledged
	// round. (A read that was in flight to it when it stopped does not
	// wait for it either: TestClusterHungIngesterInFlight.)
	evalT := time.UnixMilli(l.base + clusterMaxRounds*clusterStep)
	for i := range 5 {
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		require.NoError(t, l.readOnce(rctx, evalT), "read %d with %s paused", i, victim.Name)
		rcancel()
	}
	l.waitAcked(t, atUnhealthy+150, 0, 30*time.Second)
	t.Logf("while paused: %d more rounds acknowledged, background reads %d → %d", l.acked.Load()-atUnhealthy, readsAtUnhealthy, l.reads.Load())

	require.NoError(t, victim.Signal(syscall.SIGCONT))
	require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), procs.InstanceIs(victim.Name, "ACTIVE", true)))
	l.waitAcked(t, l.acked.Load()+100, l.reads.Load()+5, 30*time.Second)

	l.stopAndWait()
	l.requireReadsOK(t)
	require.Empty(t, c.Exited(), "processes that exited")
	l.verifyExactlyOnce(t)
}

// TestClusterGracefulLeave: SIGTERM one ingester under load (it must exit
// cleanly), restart it on the same data dir; nothing acknowledged is lost,
// whether it leaves the ring or keeps its tokens (a StatefulSet restart).
func TestClusterGracefulLeave(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unregister", nil},
		{"keep tokens", []string{"-ingester.unregister-on-shutdown=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testGracefulLeave(t, tc.args) })
	}
}

func testGracefulLeave(t *testing.T, ingesterArgs []string) {
	c := startTestCluster(t, ingesterArgs...)
	l := newClusterLoad(t, c)
	l.start(t)
	l.waitAcked(t, 50, 3, 30*time.Second)

	victim := c.ByRole(procs.RoleIngester)[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, err := l.ingesterRounds(ctx, victim.GRPCAddr)
	require.NoError(t, err)
	require.NoError(t, victim.Stop(30*time.Second), "graceful shutdown of %s", victim.Name)
	t.Logf("%s left after %d acknowledged rounds", victim.Name, l.acked.Load())
	// Left, leaving or unhealthy: no longer a healthy ACTIVE member anywhere.
	require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), func(r procs.RingStatus) (bool, string) {
		in, ok := r.Instance(victim.Name)
		if ok && in.State == "ACTIVE" && in.Healthy {
			return false, victim.Name + " still ACTIVE and healthy"
		}
		return true, ""
	}))

	require.NoError(t, victim.Restart(ctx))
	after, err := l.ingesterRounds(ctx, victim.GRPCAddr)
	require.NoError(t, err)
	requireKept(t, victim, before, after)
	require.NoError(t, procs.WaitRing(ctx, clusterObservers(c), procs.InstanceIs(victim.Name, "ACTIVE", true)))
	t.Logf("%s back and ACTIVE after %d acknowledged rounds", victim.Name, l.acked.Load())
	l.waitAcked(t, l.acked.Load()+100, 0, 30*time.Second)

	l.stopAndWait()
	l.requireReadsOK(t)
	require.Empty(t, c.Exited(), "processes that exited")
	l.verifyExactlyOnce(t)
}
