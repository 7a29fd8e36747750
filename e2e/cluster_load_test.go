package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// The load of the cluster tests: one writer sends rounds in order, each
// round one sample for every series, to the distributors in turn; a round is
// retried (on the other distributor) until it is acknowledged, so the
// acknowledged rounds are always a prefix 0..acked-1.
const (
	clusterSeries    = 200
	clusterStep      = 10 // ms between the timestamps of two rounds
	clusterMaxRounds = 4000
	clusterPace      = 15 * time.Millisecond // least time between two rounds
)

// clusterValue is the value of series s in round r: unique, so a sample in
// the wrong place shows.
func clusterValue(r, s int) float64 { return float64(r)*1000 + float64(s) }

// clusterBinary returns the strata binary and fails the test if it lacks the
// cluster flags (-target=ingester etc. with gossip).
func clusterBinary(t *testing.T) string {
	t.Helper()
	bin := strataBin(t)
	out, _ := exec.Command(bin, "-help").CombinedOutput()
	for _, f := range []string{"memberlist.bind-address", "memberlist.join", "ring.heartbeat-timeout", "ingester.heartbeat-period"} {
		if !strings.Contains(string(out), "-"+f+" ") && !strings.Contains(string(out), "-"+f+"\n") {
			t.Fatalf("strata has no -%s: the cluster wiring of cmd/strata is missing", f)
		}
	}
	return bin
}

// startTestCluster starts 3 ingesters in 3 zones (RF=3), 2 distributors and
// a querier with short heartbeats, so that a paused ingester turns
// unhealthy within seconds. ingesterArgs are added to the ingesters' flags.
func startTestCluster(t *testing.T, ingesterArgs ...string) *procs.Cluster {
	t.Helper()
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin:          clusterBinary(t),
		IngesterArgs: ingesterArgs,
		Args: []string{
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=4s",
			"-memberlist.rejoin-interval=1s",
			"-memberlist.pull-push-interval=2s",
		},
	})
	waitActive(context.Background(), t, clusterObservers(c), c.ByRole(procs.RoleIngester), 30*time.Second)
	return c
}

// clusterObservers are the nodes whose ring decides where reads and writes go.
func clusterObservers(c *procs.Cluster) []*procs.Node {
	return append(c.ByRole(procs.RoleDistributor), c.ByRole(procs.RoleQuerier)...)
}

// clusterLoad is the writer and a reader of one test.
type clusterLoad struct {
	metric  string
	base    int64     // ms: timestamp of round 0
	dists   []*client // one per distributor, 10s a request
	querier *client

	acked     atomic.Int64 // rounds acknowledged
	attempted atomic.Int64 // rounds sent at least once
	retries   atomic.Int64
	reads     atomic.Int64 // successful reads
	lastRetry atomic.Value // string: why the last retry happened

	mu       sync.Mutex
	writeErr error // a 4xx or the writer's deadline: the writer stopped
	readErrs []string

	stop chan struct{}
	wg   sync.WaitGroup
}

func newClusterLoad(t *testing.T, c *procs.Cluster) *clusterLoad {
	l := &clusterLoad{
		metric:  "strata_cluster_test_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")),
		base:    time.Now().Add(-3 * time.Minute).Truncate(time.Second).UnixMilli(),
		querier: newClient(c.ByRole(procs.RoleQuerier)[0].URL()).withTimeout(time.Minute),
		stop:    make(chan struct{}),
	}
	for _, d := range c.ByRole(procs.RoleDistributor) {
		l.dists = append(l.dists, newClient(d.URL()).withTimeout(10*time.Second))
	}
	l.lastRetry.Store("")
	return l
}

// round is the encoded request of round r.
func (l *clusterLoad) round(r int) []byte {
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, clusterSeries)}
	for s := range clusterSeries {
		wr.Timeseries[s] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: l.metric},
				{Name: "series", Value: strconv.Itoa(s)},
			},
			Samples: []prompb.Sample{{Timestamp: l.base + int64(r)*clusterStep, Value: clusterValue(r, s)}},
		}
	}
	return encodeWrite(wr)
}

// pushRound sends round r until a distributor acknowledges it, starting at
// distributor r%2 and alternating on every retry. It retries 5xx and network
// errors with backoff and never a 4xx, which it returns as an error.
func (l *clusterLoad) pushRound(ctx context.Context, r int) error {
	body := l.round(r)
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		dist := l.dists[(r+attempt)%len(l.dists)]
		url := dist.base + "/api/v1/push"
		res, err := dist.push(ctx, body)
		switch {
		case err == nil && res.Status/100 == 2:
			return nil
		case err == nil && res.Status/100 == 4:
			return fmt.Errorf("round %d to %s: %d %s (a 4xx must not be retried)", r, url, res.Status, truncate(res.text(), 300))
		case err == nil:
			l.lastRetry.Store(fmt.Sprintf("round %d to %s: %d %s", r, url, res.Status, truncate(res.text(), 200)))
		default:
			l.lastRetry.Store(fmt.Sprintf("round %d to %s: %v", r, url, err))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("round %d not acknowledged before the deadline; last: %s", r, l.lastRetry.Load())
		}
		l.retries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// start runs the writer and a reader until stopAndWait (or the test's end),
// for at most clusterMaxRounds rounds and 2 minutes.
func (l *clusterLoad) start(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(func() { l.stopAndWait(); cancel() })
	l.wg.Go(func() {
		pace := time.NewTicker(clusterPace)
		defer pace.Stop()
		for r := range clusterMaxRounds {
			select {
			case <-l.stop:
				return
			case <-pace.C:
			}
			l.attempted.Store(int64(r + 1))
			if err := l.pushRound(ctx, r); err != nil {
				l.mu.Lock()
				l.writeErr = err
				l.mu.Unlock()
				return
			}
			l.acked.Store(int64(r + 1))
		}
	})
	l.wg.Go(func() {
		evalT := time.UnixMilli(l.base + clusterMaxRounds*clusterStep)
		pace := time.NewTicker(100 * time.Millisecond)
		defer pace.Stop()
		for range 2_000 {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-pace.C:
			}
			if err := l.readOnce(ctx, evalT); err != nil {
				l.mu.Lock()
				l.readErrs = append(l.readErrs, err.Error())
				l.mu.Unlock()
			} else {
				l.reads.Add(1)
			}
		}
	})
}

// readOnce counts every series' samples and checks that no acknowledged
// round is missing: read-your-writes through the querier.
func (l *clusterLoad) readOnce(ctx context.Context, evalT time.Time) error {
	acked := int(l.acked.Load())
	if acked == 0 {
		return nil
	}
	res, err := l.querier.query(ctx, l.countQuery(), evalT)
	if err != nil {
		return fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err)
	}
	return l.checkCounts(res, acked)
}

// countQuery counts every series' samples (readOnce's query).
func (l *clusterLoad) countQuery() string {
	return fmt.Sprintf("count_over_time(%s[1h])", l.metric)
}

// checkCounts checks the answer of countQuery: every series, none missing
// an acknowledged round (acked of them, read before the query was sent).
func (l *clusterLoad) checkCounts(res apiResult, acked int) error {
	if len(res.Series) != clusterSeries {
		return fmt.Errorf("%d series counted, want %d", len(res.Series), clusterSeries)
	}
	attempted := int(l.attempted.Load())
	for _, s := range res.Series {
		if len(s.Points) != 1 {
			return fmt.Errorf("series %s: %d points, want 1", s.Labels, len(s.Points))
		}
		if n := int(s.Points[0].V); n < acked || n > attempted {
			return fmt.Errorf("series %s: %d samples, want %d acknowledged at least and %d sent at most", s.Labels, n, acked, attempted)
		}
	}
	return nil
}

// stopAndWait stops the writer after its current round and the reader.
func (l *clusterLoad) stopAndWait() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// errs returns the writer's error and the reader's failures so far.
func (l *clusterLoad) errs() (error, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeErr, append([]string(nil), l.readErrs...)
}

func (l *clusterLoad) String() string {
	werr, rerrs := l.errs()
	return fmt.Sprintf("acked %d rounds (%d sent), %d retries (last: %s), %d reads, %d failed reads, writer error: %v",
		l.acked.Load(), l.attempted.Load(), l.retries.Load(), l.lastRetry.Load(), l.reads.Load(), len(rerrs), werr)
}

// waitAcked polls until at least n rounds are acknowledged and, when reads
// is not negative, at least reads reads succeeded; it fails the test when the
// writer stopped or after timeout.
func (l *clusterLoad) waitAcked(t *testing.T, n, reads int64, timeout time.Duration) {
	t.Helper()
	err := waitFor(context.Background(), timeout, 20*time.Millisecond, func(context.Context) (bool, string) {
		if werr, _ := l.errs(); werr != nil {
			return true, ""
		}
		return l.acked.Load() >= n && l.reads.Load() >= reads, fmt.Sprintf("want %d acked rounds and %d reads: %s", n, reads, l)
	})
	werr, _ := l.errs()
	require.NoError(t, werr, "writer stopped: %s", l)
	require.NoError(t, err)
}

// requireReadsOK fails the test if any read failed.
func (l *clusterLoad) requireReadsOK(t *testing.T) {
	t.Helper()
	_, rerrs := l.errs()
	if len(rerrs) > 0 {
		t.Fatalf("%d reads failed (%s); first ones:\n%s", len(rerrs), l, strings.Join(rerrs[:min(len(rerrs), 10)], "\n"))
	}
}

// verifyExactlyOnce queries every raw sample of the test's series through
// the querier and checks each point: rounds 0..acked-1 all there once, with
// their values; a sent but unacknowledged round may be there; nothing else.
func (l *clusterLoad) verifyExactlyOnce(t *testing.T) {
	t.Helper()
	acked, attempted := int(l.acked.Load()), int(l.attempted.Load())
	require.Positive(t, acked)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evalT := time.UnixMilli(l.base + clusterMaxRounds*clusterStep)
	window := strconv.Itoa(clusterMaxRounds*clusterStep/1000+5) + "s"
	res, err := l.querier.query(ctx, l.metric+"["+window+"]", evalT)
	require.NoError(t, err)
	problems := clusterCheck(res.Series, l.base, acked, attempted)
	if len(problems) > 0 {
		t.Fatalf("acknowledged %d rounds of %d series (%d sent); %d problems, first ones:\n%s",
			acked, clusterSeries, attempted, len(problems), strings.Join(problems[:min(len(problems), 20)], "\n"))
	}
	t.Logf("verified %d acknowledged rounds × %d series = %d samples, each exactly once (%s)", acked, clusterSeries, acked*clusterSeries, l)
}

// clusterCheck returns what is wrong with got, the raw samples of the
// clusterSeries series after rounds 0..acked-1 were acknowledged and
// 0..attempted-1 sent (round k at base+k*clusterStep): at most about 20
// problems, none when every acknowledged sample is there exactly once.
func clusterCheck(got []series, base int64, acked, attempted int) []string {
	var problems []string
	seen := map[string]bool{}
	for _, s := range got {
		name := s.Labels.Get("series")
		id, err := strconv.Atoi(name)
		if err != nil || id < 0 || id >= clusterSeries || seen[name] {
			problems = append(problems, fmt.Sprintf("unexpected or repeated series %s", s.Labels))
			continue
		}
		seen[name] = true
		next := 0 // the round expected next
		for _, p := range s.Points {
			k := int((p.T - base) / clusterStep)
			switch {
			case p.T != base+int64(k)*clusterStep || p.T < base || k >= attempted:
				problems = append(problems, fmt.Sprintf("series %d: sample at %d was never sent", id, p.T))
				continue
			case k < next:
				problems = append(problems, fmt.Sprintf("series %d: round %d twice or out of order", id, k))
			case k > next && next < acked:
				problems = append(problems, fmt.Sprintf("series %d: acknowledged rounds %d..%d missing", id, next, min(k, acked)-1))
			}
			if p.V != clusterValue(k, id) {
				problems = append(problems, fmt.Sprintf("series %d round %d: value %v, want %v", id, k, p.V, clusterValue(k, id)))
			}
			next = max(next, k+1)
		}
		if next < acked {
			problems = append(problems, fmt.Sprintf("series %d: acknowledged rounds %d..%d missing at the end", id, next, acked-1))
		}
		if len(problems) > 20 {
			return problems
		}
	}
	if len(seen) != clusterSeries {
		problems = append(problems, fmt.Sprintf("%d series, want %d", len(seen), clusterSeries))
	}
	return problems
}
