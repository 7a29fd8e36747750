package querier

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// statusIngester answers TSDBStatus and UserStats over one TSDB per tenant,
// as the real ingester does (ingester/stats.go), on a loopback gRPC port.
type statusIngester struct {
	ingesterpb.UnimplementedIngesterServer

	addr string
	dbs  map[string]*tsdb.DB
	regs map[string]*prometheus.Registry
	rate float64     // every tenant's ingestion rate
	fail atomic.Bool // every RPC fails Unavailable
	srv  *grpc.Server
	done chan struct{}
	tb   testing.TB
}

func startStatusIngester(t testing.TB, tenants ...string) *statusIngester {
	t.Helper()
	f := &statusIngester{dbs: map[string]*tsdb.DB{}, regs: map[string]*prometheus.Registry{}, srv: grpc.NewServer(), done: make(chan struct{}), tb: t}
	dir := t.TempDir()
	for _, id := range tenants {
		opts := tsdb.DefaultOptions()
		opts.WALSegmentSize = -1
		opts.StripeSize = 64
		reg := prometheus.NewRegistry()
		db, err := tsdb.Open(filepath.Join(dir, id), nil, reg, opts, nil)
		require.NoError(t, err)
		f.dbs[id], f.regs[id] = db, reg
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.addr = lis.Addr().String()
	ingesterpb.RegisterIngesterServer(f.srv, f)
	go func() {
		defer close(f.done)
		_ = f.srv.Serve(lis)
	}()
	t.Cleanup(func() {
		f.srv.Stop()
		<-f.done
		for _, db := range f.dbs {
			_ = db.Close()
		}
	})
	return f
}

func (f *statusIngester) TSDBStatus(_ context.Context, r *ingesterpb.TSDBStatusRequest) (*ingesterpb.TSDBStatusResponse, error) {
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "down")
	}
	db := f.dbs[r.GetTenant()]
	if db == nil {
		return &ingesterpb.TSDBStatusResponse{MinTimeMs: math.MaxInt64, MaxTimeMs: math.MinInt64}, nil
	}
	s := db.Head().Stats(labels.MetricName, int(r.GetLimit()))
	conv := func(stats []index.Stat) []*ingesterpb.TSDBStat {
		out := make([]*ingesterpb.TSDBStat, len(stats))
		for k, s := range stats {
			out[k] = &ingesterpb.TSDBStat{Name: s.Name, Value: s.Count}
		}
		return out
	}
	return &ingesterpb.TSDBStatusResponse{
		NumSeries: s.NumSeries, NumLabelPairs: int64(s.IndexPostingStats.NumLabelPairs),
		ChunkCount: headChunkGauge(f.tb, f.regs[r.GetTenant()]), MinTimeMs: s.MinTime, MaxTimeMs: s.MaxTime,
		SeriesCountByMetricName:     conv(s.IndexPostingStats.CardinalityMetricsStats),
		LabelValueCountByLabelName:  conv(s.IndexPostingStats.CardinalityLabelStats),
		MemoryInBytesByLabelName:    conv(s.IndexPostingStats.LabelValueStats),
		SeriesCountByLabelValuePair: conv(s.IndexPostingStats.LabelValuePairsStats),
	}, nil
}

func (f *statusIngester) UserStats(_ context.Context, r *ingesterpb.UserStatsRequest) (*ingesterpb.UserStatsResponse, error) {
	if f.fail.Load() {
		return nil, status.Error(codes.Unavailable, "down")
	}
	db := f.dbs[r.GetTenant()]
	if db == nil {
		return &ingesterpb.UserStatsResponse{}, nil
	}
	return &ingesterpb.UserStatsResponse{IngestionRate: f.rate, ApiIngestionRate: f.rate, NumSeries: db.Head().NumSeries()}, nil
}

func headChunkGauge(t testing.TB, reg *prometheus.Registry) int64 {
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() == "prometheus_tsdb_head_chunks" {
			return int64(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	t.Fatal("no prometheus_tsdb_head_chunks")
	return 0
}

// rfRing is a static read set that tells its replication factor, as
// *ring.Ring does.
type rfRing struct {
	set ring.ReplicationSet
	rf  int
}

func (r rfRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) { return r.set, nil }
func (r rfRing) ReplicationFactor() int                                    { return r.rf }

// statusCluster is n statusIngesters, each holding every series of every
// tenant (RF = n), behind a Querier with multi-tenancy on.
func statusCluster(t testing.TB, n int, tenants ...string) ([]*statusIngester, http.Handler) {
	t.Helper()
	var (
		ings []*statusIngester
		rs   ring.ReplicationSet
	)
	for i := range n {
		f := startStatusIngester(t, tenants...)
		ings = append(ings, f)
		rs.Instances = append(rs.Instances, ring.Instance{ID: fmt.Sprintf("ingester-%d", i), Addr: f.addr, State: ring.Active})
	}
	rs.MaxErrors = (n - 1) / 2
	reg := prometheus.NewRegistry()
	pool := clientpool.New(clientpool.Config{MaxMessageBytes: 100 << 20, KeepaliveTime: 20 * time.Second}, reg)
	t.Cleanup(func() { _ = pool.Close() })
	q, err := New(defaultConfig(), Deps{Ring: rfRing{set: rs, rf: n}, Clients: pool, Reg: reg, Tenants: tenant.Resolver{MultitenancyEnabled: true}})
	require.NoError(t, err)
	return ings, q.Handler()
}

// loadStatusData appends a known head to tenant's TSDB on every ingester:
// up on 3 instances, http_requests_total with 2 codes on 2 jobs, and a
// tenant-named metric.
func loadStatusData(t testing.TB, ings []*statusIngester, tenantID string) {
	t.Helper()
	const t0 = int64(1_700_000_000_000)
	for _, f := range ings {
		app := f.dbs[tenantID].AppenderV2(context.Background())
		add := func(ls labels.Labels, ts int64) {
			_, err := app.Append(0, ls, 0, ts, 1, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
		}
		for k := range int64(4) {
			ts := t0 + k*15000
			for _, inst := range []string{"a:1", "b:1", "c:1"} {
				add(labels.FromStrings("__name__", "up", "job", "node", "instance", inst), ts)
			}
			for _, job := range []string{"api", "web"} {
				for _, code := range []string{"200", "500"} {
					add(labels.FromStrings("__name__", "http_requests_total", "job", job, "code", code), ts)
				}
			}
			add(labels.FromStrings("__name__", "only_"+tenantID, "job", "node"), ts)
		}
		require.NoError(t, app.Commit())
	}
}

func getStatus(t testing.TB, h http.Handler, tenantID, path string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if tenantID != "" {
		req.Header.Set(tenant.Header, tenantID)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// Prometheus' web/api/v1 TSDBStat, HeadStats and TSDBStatus, copied (the
// package cannot be imported: its dependencies are not in go.sum), to
// render what Prometheus' serveTSDBStatus answers for the same head.
type promTSDBStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

type promHeadStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

type promTSDBStatus struct {
	HeadStats                   promHeadStats  `json:"headStats"`
	SeriesCountByMetricName     []promTSDBStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []promTSDBStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []promTSDBStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []promTSDBStat `json:"seriesCountByLabelValuePair"`
}

// prometheusTSDBStatus is serveTSDBStatus of v0.315.1 over db, except that
// entries of equal value are ordered by name (Prometheus leaves them in map
// order; the querier orders them so answers are stable).
func prometheusTSDBStatus(t testing.TB, db *tsdb.DB, reg *prometheus.Registry, limit int) string {
	t.Helper()
	s := db.Head().Stats(labels.MetricName, limit)
	conv := func(stats []index.Stat) []promTSDBStat {
		out := make([]promTSDBStat, 0, len(stats))
		for _, item := range stats {
			out = append(out, promTSDBStat{Name: item.Name, Value: item.Count})
		}
		slices.SortStableFunc(out, func(a, b promTSDBStat) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
		return out
	}
	b, err := json.Marshal(struct {
		Status string         `json:"status"`
		Data   promTSDBStatus `json:"data"`
	}{"success", promTSDBStatus{
		HeadStats: promHeadStats{
			NumSeries: s.NumSeries, ChunkCount: headChunkGauge(t, reg), MinTime: s.MinTime, MaxTime: s.MaxTime,
			NumLabelPairs: s.IndexPostingStats.NumLabelPairs,
		},
		SeriesCountByMetricName:     conv(s.IndexPostingStats.CardinalityMetricsStats),
		LabelValueCountByLabelName:  conv(s.IndexPostingStats.CardinalityLabelStats),
		MemoryInBytesByLabelName:    conv(s.IndexPostingStats.LabelValueStats),
		SeriesCountByLabelValuePair: conv(s.IndexPostingStats.LabelValuePairsStats),
	}})
	require.NoError(t, err)
	return string(b)
}

func TestTSDBStatusAPI(t *testing.T) {
	single, h1 := statusCluster(t, 1, "tenant-a", "tenant-b")
	loadStatusData(t, single, "tenant-a")
	loadStatusData(t, single, "tenant-b")
	three, h3 := statusCluster(t, 3, "tenant-a", "tenant-b")
	loadStatusData(t, three, "tenant-a")
	loadStatusData(t, three, "tenant-b")

	// Limit 100 covers every entry: Prometheus' answer for the same head.
	want := prometheusTSDBStatus(t, single[0].dbs["tenant-a"], single[0].regs["tenant-a"], 100)
	code, got := getStatus(t, h1, "tenant-a", "/api/v1/status/tsdb?limit=100")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, want, got)
	require.Equal(t, want, got, "byte for byte")

	// The default limit (10), pinned in a golden file.
	code, got = getStatus(t, h1, "tenant-a", "/api/v1/status/tsdb")
	require.Equal(t, http.StatusOK, code)
	checkGolden(t, filepath.Join("testdata", "api", "status_tsdb.golden"), got+"\n")

	t.Run("three replicas give the single-copy numbers", func(t *testing.T) {
		for _, path := range []string{"/api/v1/status/tsdb", "/api/v1/status/tsdb?limit=100", "/api/v1/status/tsdb?limit=1"} {
			_, one := getStatus(t, h1, "tenant-a", path)
			code, got := getStatus(t, h3, "tenant-a", path)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, one, got, path)
		}
		// One replica down: the other two answer, divided by two.
		three[1].fail.Store(true)
		defer three[1].fail.Store(false)
		_, one := getStatus(t, h1, "tenant-a", "/api/v1/status/tsdb?limit=100")
		code, got := getStatus(t, h3, "tenant-a", "/api/v1/status/tsdb?limit=100")
		require.Equal(t, http.StatusOK, code)
		var w, g map[string]any
		require.NoError(t, json.Unmarshal([]byte(one), &w))
		require.NoError(t, json.Unmarshal([]byte(got), &g))
		require.Equal(t, w["data"], g["data"])
		require.Contains(t, g, "warnings")
	})

	t.Run("tenant isolation", func(t *testing.T) {
		_, a := getStatus(t, h3, "tenant-a", "/api/v1/status/tsdb?limit=100")
		_, b := getStatus(t, h3, "tenant-b", "/api/v1/status/tsdb?limit=100")
		require.Contains(t, a, "only_tenant-a")
		require.NotContains(t, a, "only_tenant-b")
		require.Contains(t, b, "only_tenant-b")
		require.NotContains(t, b, "only_tenant-a")
		code, c := getStatus(t, h3, "tenant-c", "/api/v1/status/tsdb")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, `{"status":"success","data":{"headStats":{"numSeries":0,"numLabelPairs":0,"chunkCount":0,"minTime":9223372036854775807,"maxTime":-9223372036854775808},"seriesCountByMetricName":[],"labelValueCountByLabelName":[],"memoryInBytesByLabelName":[],"seriesCountByLabelValuePair":[]}}`, c)
	})

	t.Run("limit", func(t *testing.T) {
		_, got := getStatus(t, h3, "tenant-a", "/api/v1/status/tsdb?limit=1")
		var s struct{ Data tsdbStatus }
		require.NoError(t, json.Unmarshal([]byte(got), &s))
		require.Equal(t, []tsdbStat{{"http_requests_total", 4}}, s.Data.SeriesCountByMetricName)
		require.Equal(t, []tsdbStat{{"__name__=http_requests_total", 4}}, s.Data.SeriesCountByLabelValuePair) // ties by name
		require.Len(t, s.Data.LabelValueCountByLabelName, 1)
		require.Len(t, s.Data.MemoryInBytesByLabelName, 1)
		require.Equal(t, uint64(8), s.Data.HeadStats.NumSeries)
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			tenant, path string
			wantCode     int
			wantBody     string
		}{
			{"tenant-a", "/api/v1/status/tsdb?limit=0", 400, `{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}`},
			{"tenant-a", "/api/v1/status/tsdb?limit=-3", 400, `{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}`},
			{"tenant-a", "/api/v1/status/tsdb?limit=x", 400, `{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}`},
			{"tenant-a", "/api/v1/status/tsdb?limit=10001", 400, `{"status":"error","errorType":"bad_data","error":"limit must not exceed 10000"}`},
			{"", "/api/v1/status/tsdb", 401, `{"status":"error","errorType":"unauthorized","error":"no tenant id: set the X-Scope-OrgID header"}`},
		} {
			t.Run(tc.path, func(t *testing.T) {
				code, body := getStatus(t, h3, tc.tenant, tc.path)
				require.Equal(t, tc.wantCode, code)
				require.Equal(t, tc.wantBody, body)
			})
		}
		// More replicas down than the read set tolerates: 503.
		three[0].fail.Store(true)
		three[1].fail.Store(true)
		defer func() { three[0].fail.Store(false); three[1].fail.Store(false) }()
		code, body := getStatus(t, h3, "tenant-a", "/api/v1/status/tsdb")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Contains(t, body, `"errorType":"unavailable"`)
	})
}

func TestUserStatsAPI(t *testing.T) {
	ings, h := statusCluster(t, 3, "tenant-a", "tenant-b")
	loadStatusData(t, ings, "tenant-a")
	for _, f := range ings {
		f.rate = 30 // each replica appends every sample
	}
	for _, tc := range []struct {
		name, tenant string
		down         int // ingesters failing
		wantCode     int
		wantBody     string
	}{
		{"all answer", "tenant-a", 0, 200, `{"ingestionRate":30,"numSeries":8,"APIIngestionRate":30,"RuleIngestionRate":0}`},
		{"one down", "tenant-a", 1, 200, `{"ingestionRate":30,"numSeries":8,"APIIngestionRate":30,"RuleIngestionRate":0}`},
		{"tenant without series", "tenant-c", 0, 200, `{"ingestionRate":0,"numSeries":0,"APIIngestionRate":0,"RuleIngestionRate":0}`},
		{"empty tsdb", "tenant-b", 0, 200, `{"ingestionRate":30,"numSeries":0,"APIIngestionRate":30,"RuleIngestionRate":0}`},
		{"no tenant", "", 0, 401, `{"status":"error","errorType":"unauthorized","error":"no tenant id: set the X-Scope-OrgID header"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k := range tc.down {
				ings[k].fail.Store(true)
			}
			defer func() {
				for _, f := range ings {
					f.fail.Store(false)
				}
			}()
			code, body := getStatus(t, h, tc.tenant, "/api/v1/user_stats")
			require.Equal(t, tc.wantCode, code)
			require.Equal(t, tc.wantBody, body)
		})
	}
	ings[0].fail.Store(true)
	ings[1].fail.Store(true)
	code, body := getStatus(t, h, "tenant-a", "/api/v1/user_stats")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, `"errorType":"unavailable"`)
}

// TestMergeTSDBStatus covers what replicas sharded over more ingesters than
// RF give: 6 ingesters, RF 3.
func TestMergeTSDBStatus(t *testing.T) {
	stat := func(name string, v uint64) *ingesterpb.TSDBStat { return &ingesterpb.TSDBStat{Name: name, Value: v} }
	var resps []*ingesterpb.TSDBStatusResponse
	for i := range 6 {
		resps = append(resps, &ingesterpb.TSDBStatusResponse{
			NumSeries: 500, NumLabelPairs: 1010, ChunkCount: 600, MinTimeMs: int64(100 + i), MaxTimeMs: int64(200 + i),
			SeriesCountByMetricName: []*ingesterpb.TSDBStat{stat("up", 500)},
			// id is unique per series (500 here of 1,000), zone has 10
			// values, each on every ingester.
			LabelValueCountByLabelName:  []*ingesterpb.TSDBStat{stat("id", 500), stat("zone", 10)},
			SeriesCountByLabelValuePair: []*ingesterpb.TSDBStat{stat("__name__=up", 500)},
			MemoryInBytesByLabelName:    []*ingesterpb.TSDBStat{stat("id", 3000)},
		})
	}
	got := mergeTSDBStatus(resps, 3, 10)
	require.Equal(t, headStats{NumSeries: 1000, NumLabelPairs: 2020, ChunkCount: 1200, MinTime: 100, MaxTime: 205}, got.HeadStats)
	require.Equal(t, []tsdbStat{{"up", 1000}}, got.SeriesCountByMetricName)
	// id is exact; zone is over-counted (20 for 10), as documented.
	require.Equal(t, []tsdbStat{{"id", 1000}, {"zone", 20}}, got.LabelValueCountByLabelName)
	require.Equal(t, []tsdbStat{{"id", 6000}}, got.MemoryInBytesByLabelName)

	// Never below the largest single ingester's distinct count.
	got = mergeTSDBStatus(resps[:1], 1, 10)
	require.Equal(t, []tsdbStat{{"id", 500}, {"zone", 10}}, got.LabelValueCountByLabelName)
	got = mergeTSDBStatus([]*ingesterpb.TSDBStatusResponse{
		{LabelValueCountByLabelName: []*ingesterpb.TSDBStat{stat("zone", 10)}},
		{LabelValueCountByLabelName: []*ingesterpb.TSDBStat{stat("zone", 2)}},
	}, 3, 10)
	require.Equal(t, []tsdbStat{{"zone", 10}}, got.LabelValueCountByLabelName)
}
