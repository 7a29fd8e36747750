package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
)

// loadSeries appends n series x{job, i} with samples every 15s over
// 10 minutes from t0 (ms), each with one exemplar, and metadata.
func loadSeries(t testing.TB, c *cluster, n int, t0 int64) {
	t.Helper()
	app := c.appender(context.Background())
	for i := range n {
		ls := labels.FromStrings("__name__", "x", "job", fmt.Sprintf("job-%d", i%3), "i", fmt.Sprint(i))
		for k := range 41 {
			opts := storage.AppendV2Options{}
			if k == 20 {
				opts.Exemplars = []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", fmt.Sprint(i)), Value: float64(k), Ts: t0 + int64(k)*15000, HasTs: true}}
			}
			_, err := app.Append(0, ls, 0, t0+int64(k)*15000, float64(i*k), nil, nil, opts)
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
	for _, f := range c.ings {
		f.metadata = []*ingesterpb.MetricMetadata{{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "x", Help: "An x."}}
	}
}

// readAll reads everything a tenant has through every kind of read.
type readResult struct {
	series    map[string]int // labels → samples
	seriesAPI []string
	names     []string
	values    []string
	exemplars int
	metadata  int
	warnings  []string
}

func readAll(t testing.TB, q *Querier) (readResult, error) {
	t.Helper()
	return readAllCtx(t, context.Background(), q)
}

func readAllCtx(t testing.TB, ctx context.Context, q *Querier) (readResult, error) {
	t.Helper()
	var r readResult
	qr, err := q.Queryable("t").Querier(0, 1<<62)
	require.NoError(t, err)
	defer qr.Close()
	m := labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")
	warn := func(ws interface{ AsErrors() []error }) {
		for _, w := range ws.AsErrors() {
			r.warnings = append(r.warnings, w.Error())
		}
	}

	set := qr.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1 << 62}, m)
	r.series = map[string]int{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		r.series[set.At().Labels().String()] = n
	}
	if err := set.Err(); err != nil {
		return r, err
	}
	warn(set.Warnings())

	set = qr.Select(ctx, true, &storage.SelectHints{Start: 0, End: 1 << 62, Func: "series"}, m)
	for set.Next() {
		r.seriesAPI = append(r.seriesAPI, set.At().Labels().String())
	}
	if err := set.Err(); err != nil {
		return r, err
	}
	warn(set.Warnings())

	names, ws, err := qr.LabelNames(ctx, nil)
	if err != nil {
		return r, err
	}
	r.names = names
	warn(ws)
	values, ws, err := qr.LabelValues(ctx, "job", nil, m)
	if err != nil {
		return r, err
	}
	r.values = values
	warn(ws)

	eq, err := q.ExemplarQueryable("t").ExemplarQuerier(ctx)
	require.NoError(t, err)
	ex, err := eq.Select(0, 1<<62, []*labels.Matcher{m})
	if err != nil {
		return r, err
	}
	for _, e := range ex {
		r.exemplars += len(e.Exemplars)
	}
	md, ws, err := metricMetadata(ctx, q.fanout, "t", "", -1, -1)
	if err != nil {
		return r, err
	}
	r.metadata = len(md)
	warn(ws)
	return r, nil
}

// TestFanOutTolerance: with RF=3 every series is on the 3 ingesters; the
// ring tolerates one failure. One ingester failing or down changes no
// answer and adds warnings; two fail every read.
func TestFanOutTolerance(t *testing.T) {
	down := status.Error(codes.Unavailable, "ingester is stopping")
	badInput := func() error {
		st, err := status.New(codes.InvalidArgument, "invalid matcher").WithDetails(&ingesterpb.ErrorDetails{Class: ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT})
		require.NoError(t, err)
		return st.Err()
	}()
	for _, tc := range []struct {
		name     string
		break_   func(c *cluster)
		broken   int // the one broken ingester, answered before the others (see orderGate); -1: none or several
		warnings int // reads that warn: all 6 but exemplars (no warnings in that interface)
		wantErr  func(t *testing.T, err error)
	}{
		{name: "all up", break_: func(*cluster) {}, broken: -1},
		{name: "one fails", break_: func(c *cluster) { c.ings[1].setFailure(down) }, broken: 1, warnings: 5},
		{name: "one stopped", break_: func(c *cluster) { c.ings[2].stop() }, broken: 2, warnings: 5},
		{name: "two fail", break_: func(c *cluster) { c.ings[0].setFailure(down); c.ings[2].stop() }, broken: -1, wantErr: func(t *testing.T, err error) {
			var ue *UnavailableError
			require.ErrorAs(t, err, &ue)
			require.Len(t, ue.Failures, 2)
			require.Contains(t, err.Error(), "ingester-0 (")
			require.Contains(t, err.Error(), "ingester-2 (")
			require.Contains(t, err.Error(), "2 of 3 failed, at most 1 may")
			require.Equal(t, promapi.ErrorUnavailable, returnAPIError(err).Type)
		}},
		{name: "two reject the request", break_: func(c *cluster) { c.ings[0].setFailure(badInput); c.ings[1].setFailure(badInput) }, broken: -1, wantErr: func(t *testing.T, err error) {
			require.Equal(t, promapi.ErrorBadData, returnAPIError(err).Type)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := &orderGate{}
			c := startCluster(t, clusterOptions{replicas: 3, deps: gate.deps(t)})
			loadSeries(t, c, 12, 1_700_000_000_000)
			want, err := readAll(t, c.q)
			require.NoError(t, err)
			require.Len(t, want.series, 12)
			require.Empty(t, want.warnings)

			tc.break_(c)
			if tc.broken >= 0 {
				// The two others cover every series: without the gate
				// their answers may end the read before the failure
				// arrives, and its warning with it.
				gate.arm(c.ings[tc.broken].addr)
			}
			got, err := readAll(t, c.q)
			if tc.wantErr != nil {
				require.Error(t, err)
				tc.wantErr(t, err)
				return
			}
			require.NoError(t, err)
			require.Len(t, got.warnings, tc.warnings)
			for _, w := range got.warnings {
				require.Contains(t, w, "its replicas answered for it")
			}
			got.warnings = nil
			require.Equal(t, want, got)
		})
	}
}

// TestFanOutZones: 6 ingesters in 3 zones, each series on one ingester per
// zone; a whole zone may fail, two instances in two zones may not.
func TestFanOutZones(t *testing.T) {
	down := status.Error(codes.Unavailable, "zone is down")
	for _, tc := range []struct {
		name    string
		fail    []int
		wantErr string
	}{
		{"one instance", []int{1}, ""},
		{"a whole zone", []int{0, 3}, ""},
		{"two zones", []int{0, 4}, "2 of 6 failed, at most 1 may (or all of 1 zone(s))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, clusterOptions{ingesters: 6, replicas: 3, zones: 3})
			loadSeries(t, c, 12, 1_700_000_000_000)
			want, err := readAll(t, c.q)
			require.NoError(t, err)
			require.Len(t, want.series, 12)
			for _, i := range tc.fail {
				c.ings[i].setFailure(down)
			}
			got, err := readAll(t, c.q)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Equal(t, promapi.ErrorUnavailable, returnAPIError(err).Type)
				return
			}
			require.NoError(t, err)
			got.warnings = nil
			require.Equal(t, want, got)
		})
	}
}

// TestFanOutHTTP checks what a client sees of ingester failures.
func TestFanOutHTTP(t *testing.T) {
	gate := &orderGate{}
	c := startCluster(t, clusterOptions{replicas: 3, deps: gate.deps(t)})
	const t0 = 1_700_000_000
	loadSeries(t, c, 6, t0*1000)
	h := c.q.Handler()
	query := func() (int, string) {
		form := url.Values{"query": {"sum(x)"}, "start": {fmt.Sprint(t0)}, "end": {fmt.Sprint(t0 + 600)}, "step": {"60"}}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/query_range", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, body := query()
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, "warnings")

	c.ings[1].setFailure(status.Error(codes.Unavailable, "down for maintenance"))
	gate.arm(c.ings[1].addr) // its failure arrives before the others cover it
	code, body = query()
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"warnings":["ingester ingester-1 (`)
	require.Contains(t, body, `) failed QueryStream, its replicas answered for it: rpc error: code = Unavailable desc = down for maintenance"]`)

	c.ings[2].setFailure(status.Error(codes.Unavailable, "down for maintenance"))
	gate.arm("")
	code, body = query()
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.True(t, strings.HasPrefix(body, `{"status":"error","errorType":"unavailable","error":"expanding series: QueryStream to ingesters: 2 of 3 failed, at most 1 may; ingester-`), body)
}

func TestFanOutRingErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantTyp promapi.ErrorType
	}{
		{"too few healthy", fmt.Errorf("%w: 1 of 3 replicas healthy", ring.ErrTooFewHealthy), promapi.ErrorUnavailable},
		{"empty ring", ring.ErrEmpty, promapi.ErrorUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := New(defaultConfig(), Deps{Ring: errRing{tc.err}, Clients: noClients{}})
			require.NoError(t, err)
			_, err = readAll(t, q)
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, tc.wantTyp, returnAPIError(err).Type)
		})
	}
}

func TestFanOutCanceled(t *testing.T) {
	c := startCluster(t, clusterOptions{})
	loadSeries(t, c, 3, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	qr, err := c.q.Queryable("t").Querier(0, 1<<62)
	require.NoError(t, err)
	defer qr.Close()
	_, _, err = qr.LabelNames(ctx, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, promapi.ErrorCanceled, returnAPIError(err).Type)
}

type errRing struct{ err error }

func (r errRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{}, r.err
}

type noClients struct{}

func (noClients) Get(string) (ingesterpb.IngesterClient, error) {
	return nil, errors.New("no clients in this test")
}

// TestFanOutStragglers: a read stops waiting for the ingesters that have
// not answered once those that did cover every series (all but MaxErrors
// instances, or every zone but MaxUnavailableZones); the hung ingesters
// (answering nothing until their call is canceled, as a SIGSTOPped process
// does) then cost nothing. Hung beyond that, the read waits for its
// context to end, as before. Statistics wait for every ingester.
func TestFanOutStragglers(t *testing.T) {
	down := status.Error(codes.Unavailable, "ingester is stopping")
	for _, tc := range []struct {
		name       string
		opts       clusterOptions
		hang, fail []int
		waits      bool // the read cannot complete: it ends with its context
	}{
		{name: "one of three hangs", opts: clusterOptions{replicas: 3}, hang: []int{1}},
		{name: "one hangs, each series on two of three", opts: clusterOptions{}, hang: []int{0}},
		{name: "a whole zone hangs", opts: clusterOptions{ingesters: 6, replicas: 3, zones: 3}, hang: []int{0, 3}},
		{name: "one zone hangs, an instance of it fails", opts: clusterOptions{ingesters: 6, replicas: 3, zones: 3}, hang: []int{1}, fail: []int{4}},
		{name: "two of three hang", opts: clusterOptions{replicas: 3}, hang: []int{0, 2}, waits: true},
		{name: "one hangs, one fails", opts: clusterOptions{replicas: 3}, hang: []int{0}, fail: []int{1}, waits: true},
		{name: "two zones hang", opts: clusterOptions{ingesters: 6, replicas: 3, zones: 3}, hang: []int{0, 4}, waits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.opts)
			loadSeries(t, c, 12, 1_700_000_000_000)
			want, err := readAll(t, c.q)
			require.NoError(t, err)
			require.Len(t, want.series, 12)
			for _, i := range tc.hang {
				c.ings[i].hang.Store(true)
			}
			for _, i := range tc.fail {
				c.ings[i].setFailure(down)
			}

			if tc.waits {
				// Nothing can end these reads but their context: a short
				// deadline is the answer, not a measurement.
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				_, err := readAllCtx(t, ctx, c.q)
				require.ErrorIs(t, err, context.DeadlineExceeded)
				return
			}
			// Before the fix the hung ingesters held the read until its
			// context ended; this deadline only keeps a regression from
			// hanging the test binary.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := readAllCtx(t, ctx, c.q)
			require.NoError(t, err)
			for _, w := range got.warnings { // at most the failed one's (it may lose the race with the cover)
				require.Contains(t, w, "its replicas answered for it")
				require.NotContains(t, w, c.ings[tc.hang[0]].id+" ")
			}
			got.warnings = nil
			require.Equal(t, want, got)
			// The hung ingesters' calls were canceled, not failed.
			require.Positive(t, testutil.ToFloat64(c.q.fanout.m.requests.WithLabelValues("LabelNames", outcomeCanceled)))
		})
	}

	t.Run("statistics wait for every ingester", func(t *testing.T) {
		c := startCluster(t, clusterOptions{replicas: 3})
		loadSeries(t, c, 3, 1_700_000_000_000)
		c.ings[1].hang.Store(true)
		// The fakes do not serve UserStats: a read they do serve, under
		// that RPC's name, is what fanOut decides by.
		for _, rpc := range []string{"UserStats", "TSDBStatus"} {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, _, err := fanOut(ctx, c.q.fanout, rpc, func(ctx context.Context, c ingesterpb.IngesterClient, _ int) (*ingesterpb.LabelNamesResponse, error) {
				return c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: "t", EndMs: 1 << 62})
			})
			require.ErrorIs(t, err, context.DeadlineExceeded, rpc)
		}
	})
}

func TestCoveredBy(t *testing.T) {
	inst := func(zones ...string) []ring.Instance {
		out := make([]ring.Instance, len(zones))
		for i, z := range zones {
			out[i] = ring.Instance{ID: fmt.Sprint(i), Zone: z}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		rs       ring.ReplicationSet
		answered []bool
		want     bool
	}{
		{"rf3: two of three", ring.ReplicationSet{Instances: inst("", "", ""), MaxErrors: 1}, []bool{true, false, true}, true},
		{"rf3: one of three", ring.ReplicationSet{Instances: inst("", "", ""), MaxErrors: 1}, []bool{false, false, true}, false},
		{"rf1: all needed", ring.ReplicationSet{Instances: inst("", ""), MaxErrors: 0}, []bool{true, false}, false},
		{"rf1: all answered", ring.ReplicationSet{Instances: inst("", ""), MaxErrors: 0}, []bool{true, true}, true},
		{"zones: two zones complete", ring.ReplicationSet{Instances: inst("a", "b", "c", "a", "b", "c"), MaxErrors: 1, MaxUnavailableZones: 1}, []bool{false, true, true, false, true, true}, true},
		{"zones: one zone incomplete", ring.ReplicationSet{Instances: inst("a", "b", "c", "a", "b", "c"), MaxErrors: 1, MaxUnavailableZones: 1}, []bool{false, true, true, true, false, true}, false},
		{"zones: none answered", ring.ReplicationSet{Instances: inst("a", "b", "c"), MaxErrors: 1, MaxUnavailableZones: 1}, []bool{false, false, false}, false},
		{"zones: one missing anywhere", ring.ReplicationSet{Instances: inst("a", "b", "c", "a", "b", "c"), MaxErrors: 1, MaxUnavailableZones: 1}, []bool{true, true, true, true, false, true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			for _, ok := range tc.answered {
				if ok {
					n++
				}
			}
			require.Equal(t, tc.want, coveredBy(tc.rs, tc.answered, n))
		})
	}
}

// orderGate holds the calls to every ingester but one until the call to
// that one (armed) has ended, call by call: the k-th call to any other
// ingester since arm waits for the k-th call to it to end. A read then
// sees that ingester's failure before the others' answers cover for it,
// whatever the machine's speed.
type orderGate struct {
	mu      sync.Mutex
	first   string         // address; "" when not armed
	ended   int            // calls to first that ended since arm
	started map[string]int // calls to every other address since arm
	changed chan struct{}  // closed and replaced when ended grows
}

// deps gives the querier its own client pool, with the gate's interceptors.
func (g *orderGate) deps(t testing.TB) func(*Deps) {
	pool := clientpool.New(clientpool.Config{MaxMessageBytes: 100 << 20, KeepaliveTime: 20 * time.Second}, prometheus.NewRegistry(),
		grpc.WithChainUnaryInterceptor(g.unary), grpc.WithChainStreamInterceptor(g.stream))
	t.Cleanup(func() { _ = pool.Close() })
	return func(d *Deps) { d.Clients = pool }
}

// arm makes the calls to addr go first; "" disarms.
func (g *orderGate) arm(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.first, g.ended, g.started, g.changed = addr, 0, map[string]int{}, make(chan struct{})
}

func (g *orderGate) wait(ctx context.Context, addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.first == "" || addr == g.first {
		return
	}
	g.started[addr]++
	k := g.started[addr]
	for g.ended < k {
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		g.mu.Lock()
		if ctx.Err() != nil {
			return
		}
	}
}

func (g *orderGate) end(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.first != "" && addr == g.first {
		g.ended++
		close(g.changed)
		g.changed = make(chan struct{})
	}
}

func (g *orderGate) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	g.wait(ctx, cc.Target())
	err := invoker(ctx, method, req, reply, cc, opts...)
	g.end(cc.Target())
	return err
}

func (g *orderGate) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	g.wait(ctx, cc.Target())
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		g.end(cc.Target())
		return nil, err
	}
	return &gatedStream{ClientStream: cs, end: sync.OnceFunc(func() { g.end(cc.Target()) })}, nil
}

// gatedStream reports its call's end: the first error (io.EOF included)
// from RecvMsg.
type gatedStream struct {
	grpc.ClientStream
	end func()
}

func (s *gatedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.end()
	}
	return err
}
