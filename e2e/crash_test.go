package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

const (
	crashSenders          = 4
	crashSeriesPerSender  = 50
	crashSamplesPerSeries = 5   // per request
	crashMaxRounds        = 150 // bound per sender: 750 samples a series, 12.5 minutes of timestamps
	crashKillAfter        = 40  // acknowledged requests before kill -9
	crashMetric           = "e2e_crash_samples"
)

// crashValue is the value of sample k (0-based, 1s apart) of a series; every
// sample's value is unique, so misplaced ones show.
func crashValue(sender, series, k int) float64 {
	return float64(sender*1_000_000+series*1_000) + float64(k)/8
}

// crashRequest is round r of sender: its series, crashSamplesPerSeries each.
func crashRequest(sender, r int, base int64) *prompb.WriteRequest {
	wr := &prompb.WriteRequest{}
	for s := range crashSeriesPerSender {
		ts := prompb.TimeSeries{Labels: []prompb.Label{
			{Name: "__name__", Value: crashMetric},
			{Name: "sender", Value: strconv.Itoa(sender)},
			{Name: "series", Value: strconv.Itoa(s)},
		}}
		for i := range crashSamplesPerSeries {
			k := r*crashSamplesPerSeries + i
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base + int64(k)*1000, Value: crashValue(sender, s, k)})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	return wr
}

// TestCrashSafety pushes from several senders, kills strata with SIGKILL in
// the middle of the stream, restarts it on the same -data.dir and checks that
// every sample of every acknowledged request is there exactly once, with its
// value; samples of unacknowledged requests may or may not be there, nothing
// else may.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin})
	// All timestamps lie in the past: at most 12.5 minutes of them from 15m ago.
	base := time.Now().Add(-15 * time.Minute).Truncate(time.Second).UnixMilli()

	var (
		acked    [crashSenders]int // rounds acknowledged per sender (in order: a sender stops at its first failure)
		attempts [crashSenders]int // rounds sent per sender, answered or not
		total    atomic.Int64
		killOnce sync.Once
		killErr  error
		wg       sync.WaitGroup
		dist     = newClient(s.URL).withTimeout(30 * time.Second)
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for sender := range crashSenders {
		wg.Go(func() {
			for r := range crashMaxRounds {
				body := encodeWrite(crashRequest(sender, r, base))
				attempts[sender] = r + 1
				res, err := dist.push(ctx, body)
				if err != nil || res.Status/100 != 2 {
					return // the process is gone (or refused): stop this sender
				}
				acked[sender] = r + 1
				if total.Add(1) >= crashKillAfter {
					killOnce.Do(func() { killErr = s.Process().Kill() })
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, killErr)
	require.True(t, s.Process().Exited(), "strata was not killed: senders ran out of rounds first")
	t.Logf("acknowledged rounds per sender before kill -9: %v; sent: %v", acked, attempts)

	restartCtx, cancelRestart := context.WithTimeout(context.Background(), time.Minute)
	defer cancelRestart()
	require.NoError(t, s.Restart(restartCtx))

	evalT := time.UnixMilli(base + crashMaxRounds*crashSamplesPerSeries*1000)
	window := strconv.Itoa(crashMaxRounds*crashSamplesPerSeries+60) + "s"
	got, err := newClient(s.URL).query(ctx, crashMetric+`[`+window+`]`, evalT)
	require.NoError(t, err)
	bySeries := map[string][]point{}
	for _, se := range got.Series {
		bySeries[se.Labels.Get("sender")+"/"+se.Labels.Get("series")] = se.Points
	}
	for sender := range crashSenders {
		for sr := range crashSeriesPerSender {
			key := fmt.Sprintf("%d/%d", sender, sr)
			pts := bySeries[key]
			wantAtLeast := acked[sender] * crashSamplesPerSeries
			maxK := attempts[sender] * crashSamplesPerSeries // samples of unacknowledged requests may be there
			present := map[int]bool{}
			for i, p := range pts {
				if i > 0 {
					require.Greater(t, p.T, pts[i-1].T, "series %s: duplicate or unordered timestamp", key)
				}
				k := int(p.T-base) / 1000
				require.True(t, p.T == base+int64(k)*1000 && k >= 0 && k < maxK, "series %s: sample at %d was never sent", key, p.T)
				require.Equal(t, crashValue(sender, sr, k), p.V, "series %s sample %d", key, k)
				present[k] = true
			}
			for k := range wantAtLeast {
				require.True(t, present[k], "series %s: acknowledged sample %d (at %d) lost", key, k, base+int64(k)*1000)
			}
		}
	}
	require.Len(t, got.Series, crashSenders*crashSeriesPerSender)

	// The restarted process accepts the next round of every sender.
	for sender := range crashSenders {
		res, err := dist.push(ctx, encodeWrite(crashRequest(sender, attempts[sender], base)))
		require.NoError(t, err)
		require.Equal(t, 2, res.Status/100, "push after restart: %d %s", res.Status, res.Body)
	}
}
