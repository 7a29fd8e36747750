package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	ctx := context.Background()
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
		warnings int // reads that warn: all 6 but exemplars (no warnings in that interface)
		wantErr  func(t *testing.T, err error)
	}{
		{name: "all up", break_: func(*cluster) {}},
		{name: "one fails", break_: func(c *cluster) { c.ings[1].setFailure(down) }, warnings: 5},
		{name: "one stopped", break_: func(c *cluster) { c.ings[2].stop() }, warnings: 5},
		{name: "two fail", break_: func(c *cluster) { c.ings[0].setFailure(down); c.ings[2].stop() }, wantErr: func(t *testing.T, err error) {
			var ue *UnavailableError
			require.ErrorAs(t, err, &ue)
			require.Len(t, ue.Failures, 2)
			require.Contains(t, err.Error(), "ingester-0 (")
			require.Contains(t, err.Error(), "ingester-2 (")
			require.Contains(t, err.Error(), "2 of 3 failed, at most 1 may")
			require.Equal(t, errorUnavailable, returnAPIError(err).typ)
		}},
		{name: "two reject the request", break_: func(c *cluster) { c.ings[0].setFailure(badInput); c.ings[1].setFailure(badInput) }, wantErr: func(t *testing.T, err error) {
			require.Equal(t, errorBadData, returnAPIError(err).typ)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, clusterOptions{replicas: 3})
			loadSeries(t, c, 12, 1_700_000_000_000)
			want, err := readAll(t, c.q)
			require.NoError(t, err)
			require.Len(t, want.series, 12)
			require.Empty(t, want.warnings)

			tc.break_(c)
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
				require.Equal(t, errorUnavailable, returnAPIError(err).typ)
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
	c := startCluster(t, clusterOptions{replicas: 3})
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
	code, body = query()
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"warnings":["ingester ingester-1 (`)
	require.Contains(t, body, `) failed QueryStream, its replicas answered for it: rpc error: code = Unavailable desc = down for maintenance"]`)

	c.ings[2].setFailure(status.Error(codes.Unavailable, "down for maintenance"))
	code, body = query()
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.True(t, strings.HasPrefix(body, `{"status":"error","errorType":"unavailable","error":"expanding series: QueryStream to ingesters: 2 of 3 failed, at most 1 may; ingester-`), body)
}

func TestFanOutRingErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantTyp errorType
	}{
		{"too few healthy", fmt.Errorf("%w: 1 of 3 replicas healthy", ring.ErrTooFewHealthy), errorUnavailable},
		{"empty ring", ring.ErrEmpty, errorUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := New(defaultConfig(), Deps{Ring: errRing{tc.err}, Clients: noClients{}})
			require.NoError(t, err)
			_, err = readAll(t, q)
			require.ErrorIs(t, err, tc.err)
			require.Equal(t, tc.wantTyp, returnAPIError(err).typ)
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
	require.Equal(t, errorCanceled, returnAPIError(err).typ)
}

type errRing struct{ err error }

func (r errRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) {
	return ring.ReplicationSet{}, r.err
}

type noClients struct{}

func (noClients) Get(string) (ingesterpb.IngesterClient, error) {
	return nil, errors.New("no clients in this test")
}
