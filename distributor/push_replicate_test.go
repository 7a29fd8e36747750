package distributor

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
)

// TestQuorum pushes to three fake replicas (RF=3, quorum 2) answering in
// given ways. Which replica answers first is up to the scheduler, so the
// messages are checked for what does not depend on it.
func TestQuorum(t *testing.T) {
	ok := func(context.Context) error { return nil }
	unavailable := replyCode(codes.Unavailable, "connection refused")
	badInput := replyClass(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, "out of order sample for series {__name__=\"up\"}")
	limited := replyClass(ingesterpb.ErrorClass_ERROR_CLASS_LIMITED, "per-tenant series limit of 100 reached")
	stopping := replyClass(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, "ingester is stopping")
	internal := replyCode(codes.InvalidArgument, "no details attached")
	good := series("__name__", "up", "job", "a")
	bad := series("job", "no-name")

	for _, tc := range []struct {
		name       string
		replies    [3]func(context.Context) error
		ringErr    error
		undialable int // the first n instances cannot be dialed
		in         []prompb.TimeSeries
		meta       []prompb.MetricMetadata
		wantCode   int
		wantHas    []string
	}{
		{name: "all succeed", replies: [3]func(context.Context) error{ok, ok, ok}, wantCode: 204},
		{name: "one unavailable", replies: [3]func(context.Context) error{unavailable, ok, ok}, wantCode: 204},
		{name: "two unavailable", replies: [3]func(context.Context) error{unavailable, unavailable, ok}, wantCode: 500,
			wantHas: []string{`series {__name__="up", job="a"} reached `, ` of 3 ingesters, quorum needs 2: `,
				"ingester ing-0 (addr-0): unavailable: connection refused", "ingester ing-1 (addr-1): unavailable: connection refused", "[strata-no-quorum]"}},
		{name: "all unavailable", replies: [3]func(context.Context) error{unavailable, unavailable, unavailable}, wantCode: 500,
			wantHas: []string{"reached 0 of 3 ingesters, quorum needs 2", "[strata-no-quorum]"}},
		{name: "one times out", replies: [3]func(context.Context) error{replyHang, ok, ok}, wantCode: 204},
		{name: "two time out", replies: [3]func(context.Context) error{replyHang, replyHang, ok}, wantCode: 500,
			wantHas: []string{"ingester ing-0 (addr-0): timeout: context deadline exceeded", "ingester ing-1 (addr-1): timeout: ", "[strata-no-quorum]"}},
		{name: "bad input from two replicas counts for the quorum", replies: [3]func(context.Context) error{badInput, badInput, ok}, wantCode: 400,
			wantHas: []string{"rejected some of the data, the rest was stored: out of order sample for series {__name__=\"up\"} [strata-ingester-rejected]"}},
		{name: "bad input from all replicas", replies: [3]func(context.Context) error{badInput, badInput, badInput}, wantCode: 400,
			wantHas: []string{"out of order sample", "[strata-ingester-rejected]"}},
		{name: "one limited", replies: [3]func(context.Context) error{limited, ok, ok}, wantCode: 204},
		{name: "two limited", replies: [3]func(context.Context) error{limited, limited, ok}, wantCode: 429,
			wantHas: []string{`series {__name__="up", job="a"} was refused by 2 of its 3 ingesters for a limit, quorum needs 2: `,
				"ingester ing-0 (addr-0): limited: per-tenant series limit of 100 reached", "[strata-ingester-limited]"}},
		{name: "limited and unavailable is a server failure", replies: [3]func(context.Context) error{limited, unavailable, ok}, wantCode: 500,
			wantHas: []string{"limited: per-tenant", "unavailable: connection refused", "[strata-no-quorum]"}},
		{name: "ingesters stopping", replies: [3]func(context.Context) error{stopping, stopping, ok}, wantCode: 500,
			wantHas: []string{"unavailable: ingester is stopping"}},
		{name: "errors without class are server failures", replies: [3]func(context.Context) error{internal, internal, ok}, wantCode: 500,
			wantHas: []string{"error: no details attached"}},
		{name: "two cannot be dialed", replies: [3]func(context.Context) error{ok, ok, ok}, undialable: 2, wantCode: 500,
			wantHas: []string{"ingester ing-0 (nowhere-0): unavailable: dial nowhere-0: no such fake"}},
		{name: "too few healthy replicas", ringErr: fmt.Errorf("%w: 1 of 3 replicas healthy, quorum needs 2", ring.ErrTooFewHealthy), wantCode: 503,
			wantHas: []string{`find ingesters for series {__name__="up", job="a"}: too few healthy ingesters: 1 of 3 replicas healthy, quorum needs 2`}},
		{name: "empty ring", ringErr: ring.ErrEmpty, wantCode: 503,
			wantHas: []string{"the ring has no instances"}},
		{name: "validation error and quorum", replies: [3]func(context.Context) error{ok, ok, unavailable},
			in: []prompb.TimeSeries{bad, good}, wantCode: 400,
			wantHas: []string{`series {job="no-name"} has no metric name`}},
		{name: "no quorum outranks validation errors", replies: [3]func(context.Context) error{ok, unavailable, unavailable},
			in: []prompb.TimeSeries{bad, good}, wantCode: 500,
			wantHas: []string{"[strata-no-quorum]"}},
		{name: "metadata needs its quorum too", replies: [3]func(context.Context) error{ok, unavailable, unavailable},
			in: []prompb.TimeSeries{}, meta: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temperature_celsius"}}, wantCode: 500,
			wantHas: []string{`metadata for "temperature_celsius" reached `, "[strata-no-quorum]"}},
		{name: "validation and ingester rejections together", replies: [3]func(context.Context) error{badInput, badInput, badInput},
			in: []prompb.TimeSeries{bad, good}, wantCode: 400,
			wantHas: []string{`series {job="no-name"} has no metric name (label __name__) [strata-missing-metric-name]; ingester ing-`, "[strata-ingester-rejected]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.RemoteTimeout = 200 * time.Millisecond // bounds the hanging replies
			h := newHarness(t, harnessOpts{cfg: &cfg, ingesters: 3})
			for i, r := range tc.replies {
				h.ings[i].reply = r
			}
			h.ring.err = tc.ringErr
			for i := range tc.undialable {
				h.ring.instances[i].Addr = fmt.Sprintf("nowhere-%d", i)
			}
			in := tc.in
			if in == nil {
				in = []prompb.TimeSeries{good}
			}
			code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: in, Metadata: tc.meta}))
			require.Equal(t, tc.wantCode, code, msg)
			for _, s := range tc.wantHas {
				require.Contains(t, msg, s)
			}
			if tc.ringErr != nil {
				for _, ing := range h.ings {
					require.Zero(t, ing.pushCount(), "nothing is sent when a series cannot be placed")
				}
				return
			}
			// Every dialable replica gets the push, even after the answer
			// (pushes go on in the background).
			require.Eventually(t, func() bool {
				for _, ing := range h.ings[tc.undialable:] {
					if ing.pushCount() != 1 {
						return false
					}
				}
				return true
			}, 10*time.Second, time.Millisecond)
		})
	}
}

func TestQuorumRF1(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reply    func(context.Context) error
		wantCode int
	}{
		{"ok", nil, 204},
		{"unavailable", replyCode(codes.Unavailable, "down"), 500},
		{"limited", replyClass(ingesterpb.ErrorClass_ERROR_CLASS_LIMITED, "slow down"), 429},
		{"bad input", replyClass(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, "out of order"), 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.ings[0].reply = tc.reply
			code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(10)}))
			require.Equal(t, tc.wantCode, code, msg)
			if tc.reply != nil {
				require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.ingesterPushFailures.WithLabelValues("ing-0", classify(tc.reply(context.Background())).String())))
			}
		})
	}
}

// newTestRing returns a ring of n ACTIVE instances "ing-i" at "addr-i"
// with tokens random tokens each.
func newTestRing(t testing.TB, n, tokens, rf int) (*ring.Ring, []string) {
	t.Helper()
	store := ring.NewMemStore()
	rnd := rand.New(rand.NewPCG(uint64(n), uint64(tokens)))
	seen := map[uint32]bool{}
	var addrs []string
	require.NoError(t, store.Update(context.Background(), func(d *ring.Desc) bool {
		for i := range n {
			in := ring.Instance{ID: fmt.Sprintf("ing-%d", i), Addr: fmt.Sprintf("addr-%d", i), State: ring.Active, Heartbeat: testNowMs}
			for len(in.Tokens) < tokens {
				if tok := rnd.Uint32(); !seen[tok] {
					seen[tok] = true
					in.Tokens = append(in.Tokens, tok)
				}
			}
			slices.Sort(in.Tokens)
			d.Instances[in.ID] = in
			addrs = append(addrs, in.Addr)
		}
		return true
	}))
	return ring.New(ring.Config{ReplicationFactor: rf, HeartbeatTimeout: time.Minute}, store, func() time.Time { return testNow }), addrs
}

// TestShardFollowsTheRing checks, over a real ring, that every series
// reaches exactly the replicas the ring names for its token, once each.
func TestShardFollowsTheRing(t *testing.T) {
	for _, tc := range []struct{ ingesters, rf int }{{1, 1}, {3, 1}, {3, 2}, {3, 3}, {5, 3}} {
		t.Run(fmt.Sprintf("%d ingesters RF=%d", tc.ingesters, tc.rf), func(t *testing.T) {
			r, _ := newTestRing(t, tc.ingesters, 128, tc.rf)
			ings, clients, _ := newFakes(tc.ingesters)
			h := newHarness(t, harnessOpts{ring: r, clients: clients})
			in := nodeSeries(300)
			in = append(in, series("__name__", "up", "job", "x", "empty", ""))
			code, msg := h.push(t, encode(t, &prompb.WriteRequest{Timeseries: in,
				Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "node_cpu_seconds_total_1", Help: "CPU."}}}))
			require.Equal(t, 204, code, msg)

			want := map[string][]string{} // ingester id -> series
			for _, ts := range in {
				ts = sorted(ts)
				ls := make([]remotewrite.Label, len(ts.Labels))
				for i, l := range ts.Labels {
					ls[i] = remotewrite.Label{Name: l.Name, Value: l.Value}
				}
				tok, _ := seriesToken(nil, "anonymous", ls)
				rs, err := r.Get(tok, ring.Write, nil)
				require.NoError(t, err)
				require.Len(t, rs.Instances, tc.rf)
				for _, inst := range rs.Instances {
					want[inst.ID] = append(want[inst.ID], fmt.Sprint(ts.Labels))
				}
			}
			metaTok, _ := metadataToken(nil, "anonymous", "node_cpu_seconds_total_1")
			metaRS, err := r.Get(metaTok, ring.Write, nil)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				n := 0
				for _, ing := range ings {
					n += ing.pushCount()
				}
				return n == len(want) || n > len(want)
			}, 10*time.Second, time.Millisecond)
			for _, ing := range ings {
				_, got := ing.received(t)
				var gotSeries []string
				for _, ts := range got.Timeseries {
					gotSeries = append(gotSeries, fmt.Sprint(ts.Labels))
				}
				require.Equal(t, want[ing.id], gotSeries, "series of %s", ing.id)
				wantMeta := slices.ContainsFunc(metaRS.Instances, func(in ring.Instance) bool { return in.ID == ing.id })
				require.Equal(t, wantMeta, len(got.Metadata) == 1, "metadata on %s", ing.id)
			}
		})
	}
}

// TestSeriesToken pins the token function: these values must never change
// (see seriesToken).
func TestSeriesToken(t *testing.T) {
	lbl := func(nv ...string) []remotewrite.Label {
		var ls []remotewrite.Label
		for i := 0; i+1 < len(nv); i += 2 {
			ls = append(ls, remotewrite.Label{Name: nv[i], Value: nv[i+1]})
		}
		return ls
	}
	for _, tc := range []struct {
		tenant string
		ls     []remotewrite.Label
		want   uint32
	}{
		{"anonymous", lbl("__name__", "up", "job", "a"), 0xcfd386a8},
		{"team-a", lbl("__name__", "up", "job", "a"), 0x8c5738a8},
		{"anonymous", lbl("__name__", "up", "job", "b"), 0x17eeb2be},
		{"anonymous", lbl("__name__", "up"), 0x807793c2},
		{"anonymous", nil, 0x97ce5222},
	} {
		got, _ := seriesToken(nil, tc.tenant, tc.ls)
		require.Equal(t, tc.want, got, "token of %s %v", tc.tenant, tc.ls)
	}
	// Label boundaries are part of the hash: {a="bc"} is not {ab="c"}.
	t1, _ := seriesToken(nil, "t", lbl("a", "bc"))
	t2, _ := seriesToken(nil, "t", lbl("ab", "c"))
	require.NotEqual(t, t1, t2)
	// The tenant is separated from the labels the same way.
	t3, _ := seriesToken(nil, "ta", lbl("b", "c"))
	t4, _ := seriesToken(nil, "t", lbl("ab", "c"))
	require.NotEqual(t, t3, t4)
	// Metadata of a family lands where its bare series does.
	m, _ := metadataToken(nil, "anonymous", "up")
	s, _ := seriesToken(nil, "anonymous", lbl("__name__", "up"))
	require.Equal(t, s, m)
}

// TestRunWaitsForBackgroundPushes: a push answered at quorum leaves the
// slow replica's push running; Run returns only once it has finished.
func TestRunWaitsForBackgroundPushes(t *testing.T) {
	ings, clients, fr := newFakes(3)
	release := make(chan struct{})
	ings[0].reply = func(context.Context) error { <-release; return nil }
	d, err := New(defaultConfig(), Deps{
		Ring: fr, Clients: clients, Limits: limits.NewOverrides(defaultLimits()),
		Log: slog.New(slog.DiscardHandler), Reg: prometheus.NewRegistry(), Now: func() time.Time { return testNow },
	})
	require.NoError(t, err)
	code, msg := (&harness{d: d}).push(t, encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(3)}))
	require.Equal(t, 204, code, msg)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	require.Eventually(t, func() bool { return ings[0].pushCount() == 1 }, 10*time.Second, time.Millisecond)
	select {
	case <-ran:
		t.Fatal("Run returned while a push was still running")
	default:
	}
	close(release)
	require.NoError(t, <-ran)
	require.Equal(t, 0.0, testutil.ToFloat64(d.m.inflightPushes))
}

func TestPushTimeoutGrowsWithTheBatch(t *testing.T) {
	for _, tc := range []struct {
		size int
		want time.Duration
	}{
		{0, 2 * time.Second},
		{300 << 10, 2 * time.Second}, // a Prometheus batch
		{8<<20 - 1, 2 * time.Second},
		{8 << 20, 4 * time.Second},
		{90 << 20, 24 * time.Second}, // 600,000 series
	} {
		require.Equal(t, tc.want, pushTimeout(2*time.Second, tc.size), "%d bytes", tc.size)
	}
}
