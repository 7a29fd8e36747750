package querier

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/ring"
)

const stragglerT0 = int64(1_700_000_000_000)

// selectX reads every series x through one Select (QueryStream): labels →
// samples, and the warnings.
func selectX(t *testing.T, ctx context.Context, q *Querier) (map[string]int, []string, error) {
	t.Helper()
	qr, err := q.Queryable("t").Querier(0, 1<<62)
	require.NoError(t, err)
	defer qr.Close()
	set := qr.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
	got := map[string]int{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		got[set.At().Labels().String()] = n
	}
	var warns []string
	for _, w := range set.Warnings().AsErrors() {
		warns = append(warns, w.Error())
	}
	return got, warns, set.Err()
}

func stragglers(c *cluster, outcome string) float64 {
	return testutil.ToFloat64(c.q.fanout.m.stragglers.WithLabelValues("QueryStream", outcome))
}

// TestFanOutHungIngesterQuery: with RF=3 and one ingester hung (it answers
// nothing until its call is canceled, as a SIGSTOPped process does), a
// PromQL query returns every series whole: the other two cover every
// series, and the hung one is canceled after the grace and counted. Before,
// the read waited for it until -querier.timeout (60s here) and failed.
func TestFanOutHungIngesterQuery(t *testing.T) {
	c := startCluster(t, clusterOptions{replicas: 3, cfg: func(cfg *Config) { cfg.Timeout = time.Minute }})
	loadSeries(t, c, 12, stragglerT0)
	c.ings[1].hang.Store(true)

	start := time.Now()
	qry, err := c.q.engine.NewInstantQuery(context.Background(), c.q.Queryable("t"), nil, "count_over_time(x[1h])", time.UnixMilli(stragglerT0+10*60*1000))
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	require.Less(t, time.Since(start), c.q.cfg.Timeout, "the query must not wait for the hung ingester")
	vec, err := res.Vector()
	require.NoError(t, err)
	require.Len(t, vec, 12)
	for _, s := range vec {
		require.Equal(t, 41.0, s.F, "every sample of %s", s.Metric)
	}
	require.Empty(t, res.Warnings, "a canceled straggler is no failure")
	require.Equal(t, 1.0, stragglers(c, stragglerCanceled))
	require.Equal(t, 0.0, stragglers(c, stragglerAnswered))
}

// TestFanOutStragglerGrace: once two of three replicas answered, the third
// gets a grace (as long as the two took, at most
// -querier.ingester-straggler-grace); answering within it, its answer is
// merged (here a sample only it holds, which no quorum acknowledged),
// failing within it, it is a warning; hung past it, it is canceled.
// The grace's clock is stretched so that the cover seems to have taken an
// hour: the straggler is released only after the cover, and whether it is
// in time depends on the grace alone, not on the machine's speed.
func TestFanOutStragglerGrace(t *testing.T) {
	for _, tc := range []struct {
		name         string
		grace        time.Duration
		release      bool  // release the straggler once the others answered
		fail         error // what the straggler answers when released
		wantSamples  int   // of series i=0; the straggler alone holds the 42nd
		wantOutcome  string
		wantWarnings bool
	}{
		{name: "answers within the grace", grace: time.Hour, release: true, wantSamples: 42, wantOutcome: stragglerAnswered},
		{name: "fails within the grace", grace: time.Hour, release: true, fail: status.Error(codes.Unavailable, "ingester is stopping"), wantSamples: 41, wantOutcome: stragglerAnswered, wantWarnings: true},
		{name: "grace 0 cancels at once", grace: 0, wantSamples: 41, wantOutcome: stragglerCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, clusterOptions{replicas: 3, cfg: func(cfg *Config) { cfg.IngesterStragglerGrace = tc.grace }})
			c.q.fanout.since = func(time.Time) time.Duration { return time.Hour }
			loadSeries(t, c, 12, stragglerT0)
			straggler := c.ings[1]
			app := straggler.db.AppenderV2(context.Background())
			_, err := app.Append(0, labels.FromStrings("__name__", "x", "job", "job-0", "i", "0"), 0, stragglerT0+41*15000, 1, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
			require.NoError(t, app.Commit())
			straggler.setFailure(tc.fail)
			release := make(chan struct{})
			straggler.held.Store(&release)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a regression fails, not hangs
			defer cancel()
			type answer struct {
				got   map[string]int
				warns []string
				err   error
			}
			done := make(chan answer, 1)
			go func() {
				got, warns, err := selectX(t, ctx, c.q)
				done <- answer{got, warns, err}
			}()
			if tc.release {
				successes := func() float64 {
					return testutil.ToFloat64(c.q.fanout.m.requests.WithLabelValues("QueryStream", outcomeSuccess))
				}
				require.NoError(t, waitUntil(ctx, func() bool { return successes() >= 2 }), "the two replicas answer")
				close(release)
			}
			a := <-done
			require.NoError(t, a.err)
			require.Len(t, a.got, 12)
			for ls, n := range a.got {
				want := 41
				if ls == `{__name__="x", i="0", job="job-0"}` {
					want = tc.wantSamples
				}
				require.Equal(t, want, n, ls)
			}
			if tc.wantWarnings {
				require.Len(t, a.warns, 1)
				require.Contains(t, a.warns[0], "its replicas answered for it")
			} else {
				require.Empty(t, a.warns)
			}
			require.Equal(t, 1.0, stragglers(c, tc.wantOutcome))
			require.Equal(t, 1.0, stragglers(c, stragglerAnswered)+stragglers(c, stragglerCanceled))
		})
	}
}

// TestFanOutRF1WaitsForAll: at RF=1 (MaxErrors 0) each series is on one
// ingester, so no answer covers for another: a read waits for a hung one
// until its context ends, whatever the grace.
func TestFanOutRF1WaitsForAll(t *testing.T) {
	c := startCluster(t, clusterOptions{replicas: 1})
	loadSeries(t, c, 12, stragglerT0)
	rs := ring.ReplicationSet{}
	for _, f := range c.ings {
		rs.Instances = append(rs.Instances, ring.Instance{ID: f.id, Addr: f.addr, State: ring.Active})
	}
	c.q.fanout.ring = staticRing{rs}
	got, _, err := selectX(t, context.Background(), c.q)
	require.NoError(t, err)
	require.Len(t, got, 12)

	c.ings[2].hang.Store(true)
	// Nothing but the context can end this read: the short deadline is the
	// answer, not a measurement.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err = selectX(t, ctx, c.q)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 0.0, stragglers(c, stragglerCanceled)+stragglers(c, stragglerAnswered))
}

// waitUntil polls cond every millisecond until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
