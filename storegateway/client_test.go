package storegateway

import (
	"cmp"
	"context"
	"errors"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/ring"
)

// cluster is n store-gateways on loopback TCP in one ring, and the
// querier's way to them (storequery).
type cluster struct {
	gws     []*testGateway
	sharder *ring.BlockSharder
	client  *storequery.Client
	reg     *prometheus.Registry // the client's
}

type testGateway struct {
	id, addr string
	g        *StoreGateway
	reg      *prometheus.Registry
	srv      *grpc.Server
}

// stop kills the store-gateway's server; the ring still shows it healthy,
// as it does until its heartbeat times out.
func (gw *testGateway) stop() { gw.srv.Stop() }

// startCluster starts n store-gateways with replication factor rf over
// bkt; wrap, when set, stands between gateway i's server and its gRPC
// registration.
func startCluster(t *testing.T, bkt objstore.Bucket, n, rf int, wrap func(i int, s storepb.StoreGatewayServer) storepb.StoreGatewayServer) *cluster {
	t.Helper()
	ctx := context.Background()
	store := ring.NewMemStore()
	rcfg := ring.Config{ReplicationFactor: rf}
	c := &cluster{reg: prometheus.NewRegistry()}
	c.sharder = ring.NewBlockSharder(ring.New(rcfg, store, time.Now), rcfg, time.Now)
	lister := bucketindex.NewBucketLister(bkt)
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		gw := &testGateway{id: "sg-" + string(rune('a'+i)), addr: lis.Addr().String(), reg: prometheus.NewRegistry()}
		cfg := testConfig(t)
		gw.g, err = New(cfg, Deps{Bucket: bkt, Blocks: lister, Tenants: lister.Tenants, Sharder: c.sharder, InstanceID: gw.id, Log: discard(), Reg: gw.reg})
		require.NoError(t, err)
		var s storepb.StoreGatewayServer = gw.g
		if wrap != nil {
			s = wrap(i, s)
		}
		gw.srv = grpc.NewServer()
		storepb.RegisterStoreGatewayServer(gw.srv, s)
		go func() { _ = gw.srv.Serve(lis) }()
		t.Cleanup(func() { gw.srv.Stop(); gw.g.close() })
		lc := ring.NewLifecycler(ring.LifecyclerConfig{NumTokens: 32, HeartbeatPeriod: time.Second}, ring.LifecyclerDeps{
			ID: gw.id, Addr: gw.addr, Store: store, Log: discard(), Reg: prometheus.NewRegistry(),
		})
		require.NoError(t, lc.Register(ctx))
		require.NoError(t, lc.SetState(ctx, ring.Active))
		c.gws = append(c.gws, gw)
	}
	var (
		mu    sync.Mutex
		conns = map[string]*grpc.ClientConn{}
	)
	t.Cleanup(func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	})
	c.client = storequery.New(storequery.Deps{
		Blocks: lister, Sharder: c.sharder, Log: discard(), Reg: c.reg,
		Clients: storequery.ConnFunc(func(addr string) (grpc.ClientConnInterface, error) {
			mu.Lock()
			defer mu.Unlock()
			if cc, ok := conns[addr]; ok {
				return cc, nil
			}
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err == nil {
				conns[addr] = cc
			}
			return cc, err
		}),
	})
	return c
}

func (c *cluster) gateway(id string) *testGateway {
	for _, gw := range c.gws {
		if gw.id == id {
			return gw
		}
	}
	panic("no store-gateway " + id)
}

// loaded is how many blocks the store-gateways have loaded in all.
func (c *cluster) loaded(t *testing.T) float64 {
	n := 0.0
	for _, gw := range c.gws {
		n += metricValue(t, gw.reg, "strata_storegateway_blocks_loaded")
	}
	return n
}

// series reads the tenant's series as the querier does, through
// storequery, and puts the store-gateways' answers together: each series
// once with every answer's chunks (the querier's merge would then drop
// identical ones), at most limit (0: all).
func (c *cluster) series(ctx context.Context, tenantID string, mint, maxt int64, ms []*labels.Matcher, skipChunks bool, limit int) ([]gotSeries, error) {
	pms := ingesterpb.FromMatchers(ms)
	answers, err := storequery.Fetch(ctx, c.client, "Series", tenantID, mint, maxt, func(ctx context.Context, cl storepb.StoreGatewayClient, ids []string) ([]gotSeries, []string, []*storepb.BlockError, error) {
		req := &storepb.SeriesRequest{Tenant: tenantID, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, SkipChunks: skipChunks, Limit: int64(limit)}
		return callSeriesFull(ctx, cl, req)
	})
	if err != nil {
		return nil, err
	}
	bySeries := map[string]*gotSeries{}
	var out []gotSeries
	for _, a := range answers {
		for _, s := range a {
			if g := bySeries[s.Labels]; g != nil {
				g.Chunks = append(g.Chunks, s.Chunks...)
				continue
			}
			s := s
			bySeries[s.Labels] = &s
		}
	}
	for _, g := range bySeries {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b gotSeries) int { return cmp.Compare(a.Labels, b.Labels) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return sortChunks(out), nil
}

// overlapping returns the fixture's block dirs overlapping [mint, maxt].
func (f *fixture) overlapping(mint, maxt int64) []string {
	var out []string
	for i, m := range f.metas {
		if m.MinTime <= maxt && m.MaxTime > mint {
			out = append(out, f.dirs[i])
		}
	}
	return out
}

// Over real loopback gRPC, a query reads exactly the blocks that overlap
// its range, each from one store-gateway, and answers what Prometheus
// answers over those blocks.
func TestClientSeries(t *testing.T) {
	f := newFixture(t, "t1")
	c := startCluster(t, f.bkt, 3, 2, nil)
	ctx := context.Background()
	for _, rc := range rangeCases {
		t.Run(rc.name, func(t *testing.T) {
			before := c.loaded(t)
			ms := []*labels.Matcher{matcher(labels.MatchRegexp, "__name__", ".+")}
			got, err := c.series(ctx, "t1", rc.mint, rc.maxt, ms, false, 0)
			require.NoError(t, err)
			dirs := f.overlapping(rc.mint, rc.maxt)
			require.Equal(t, reference(t, dirs, rc.mint, rc.maxt, ms, false), got)
			require.LessOrEqual(t, c.loaded(t)-before, float64(len(dirs)), "only overlapping blocks, each once")

			lset, err := c.series(ctx, "t1", rc.mint, rc.maxt, ms, true, 7)
			require.NoError(t, err)
			want := reference(t, dirs, rc.mint, rc.maxt, ms, true)
			require.Equal(t, want[:min(7, len(want))], lset)

			names, err := c.client.LabelNames(ctx, "t1", rc.mint, rc.maxt, nil, 0)
			require.NoError(t, err)
			require.Equal(t, labelsReference(t, dirs, "", nil), names)
			vals, err := c.client.LabelValues(ctx, "t1", "job", rc.mint, rc.maxt, ms[:0], 0)
			require.NoError(t, err)
			require.Equal(t, labelsReference(t, dirs, "job", nil), vals)
		})
	}
	require.Equal(t, float64(len(f.metas)), c.loaded(t), "every block loaded by one store-gateway")
	got, err := c.series(ctx, "nobody", 0, math.MaxInt64, []*labels.Matcher{matcher(labels.MatchEqual, "job", "a")}, false, 0)
	require.NoError(t, err)
	require.Empty(t, got, "a tenant without blocks")
}

// A store-gateway that is down but still in the ring: its blocks are read
// from their other replica and the answer is complete.
func TestClientRetriesAnotherReplica(t *testing.T) {
	f := newFixture(t, "t1")
	c := startCluster(t, f.bkt, 3, 2, nil)
	ctx := context.Background()
	ms := []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}
	want := reference(t, f.dirs, 0, 6*hour, ms, false)

	primary := c.sharder.Snapshot().Replicas("t1", f.metas[0].ULID, nil)[0].ID
	c.gateway(primary).stop()
	got, err := c.series(ctx, "t1", 0, 6*hour, ms, false, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Positive(t, metricValue(t, c.reg, "strata_querier_store_gateway_block_retries_total"))
	require.Positive(t, metricValue(t, c.reg, "strata_querier_store_gateway_requests_total", "Series", "error"))

	names, err := c.client.LabelNames(ctx, "t1", 0, 6*hour, nil, 0)
	require.NoError(t, err)
	require.Equal(t, labelsReference(t, f.dirs, "", nil), names)
}

// dropBlock serves every block but one: it leaves id out of the request
// and so out of queried_blocks, as a store-gateway that does not (yet)
// have a block would.
type dropBlock struct {
	storepb.StoreGatewayServer
	id string
}

func (d dropBlock) Series(req *storepb.SeriesRequest, stream grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	req.BlockIds = slices.DeleteFunc(slices.Clone(req.BlockIds), func(s string) bool { return s == d.id })
	return d.StoreGatewayServer.Series(req, stream)
}

// A block a store-gateway answered without is asked of another replica.
func TestClientRetriesBlockNotQueried(t *testing.T) {
	f := newFixture(t, "t1")
	id := f.metas[0].ULID
	// With both replicas leaving it out, the block is reported unserved.
	c := startCluster(t, f.bkt, 2, 2, func(_ int, s storepb.StoreGatewayServer) storepb.StoreGatewayServer {
		return dropBlock{s, id.String()}
	})
	ms := []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}
	_, err := c.series(context.Background(), "t1", 0, 6*hour, ms, false, 0)
	var ue *storequery.UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Len(t, ue.Blocks, 1)
	require.Equal(t, id, ue.Blocks[0].ID)
	require.ErrorContains(t, err, "answered without the block")

	// With only the primary leaving it out, the other replica serves it.
	c2 := startClusterDropping(t, f.bkt, id)
	got, err := c2.series(context.Background(), "t1", 0, 6*hour, ms, false, 0)
	require.NoError(t, err)
	require.Equal(t, reference(t, f.dirs, 0, 6*hour, ms, false), got)
	require.Equal(t, 1.0, metricValue(t, c2.reg, "strata_querier_store_gateway_block_retries_total"))
}

// startClusterDropping starts two store-gateways (RF 2) of which block id's
// primary replica leaves it out of its answers.
func startClusterDropping(t *testing.T, bkt objstore.Bucket, id ulid.ULID) *cluster {
	t.Helper()
	primary := new(atomic.Value)
	c := startCluster(t, bkt, 2, 2, func(i int, s storepb.StoreGatewayServer) storepb.StoreGatewayServer {
		return &lateWrap{StoreGatewayServer: s, self: "sg-" + string(rune('a'+i)), primary: primary, broken: dropBlock{s, id.String()}}
	})
	primary.Store(c.sharder.Snapshot().Replicas("t1", id, nil)[0].ID)
	return c
}

// When every replica of a block fails, the error names the block and what
// each replica said; a block that cannot be loaded says why.
func TestClientBlockUnavailable(t *testing.T) {
	f := newFixture(t, "t1")
	bad := uploadBlock(t, f.bkt, "t1", createBlock(t, testSeries(3, 0, 8*hour, hour, 0)))
	overwrite(t, f.bkt, "t1/"+bad.ULID.String()+"/index", sizeOf(bad, "index"))
	c := startCluster(t, f.bkt, 3, 2, nil)
	ctx := context.Background()
	ms := []*labels.Matcher{matcher(labels.MatchEqual, "__name__", "m")}

	_, err := c.series(ctx, "t1", 8*hour, 9*hour, ms, false, 0)
	var ue *storequery.UnavailableError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, bad.ULID, ue.Blocks[0].ID)
	require.ErrorContains(t, err, "block "+bad.ULID.String()+" is damaged:")
	require.ErrorContains(t, err, "loading block "+bad.ULID.String()+" of tenant t1: building index-header")
	require.Len(t, ue.Blocks[0].Attempts, 1, "damaged: the other replica, reading the same object, is not asked")
	require.Equal(t, codes.DataLoss, status.Code(ue.Blocks[0].Attempts[0].Err))
	require.True(t, ue.DataLoss())
	require.Zero(t, metricValue(t, c.reg, "strata_querier_store_gateway_block_retries_total"))

	reps := c.sharder.Snapshot().Replicas("t1", f.metas[0].ULID, nil)
	for _, in := range reps {
		c.gateway(in.ID).stop()
	}
	_, err = c.series(ctx, "t1", 0, 2*hour-1, ms, false, 0)
	require.ErrorAs(t, err, &ue)
	require.ErrorContains(t, err, f.metas[0].ULID.String())
	for _, in := range reps {
		require.ErrorContains(t, err, in.ID+" ("+in.Addr+")")
	}
	require.False(t, errors.Is(err, context.Canceled))
	require.False(t, ue.DataLoss(), "store-gateways down are not damage")
}

// failAfterFirst sends a store-gateway's series but not the end of its
// answer (queried_blocks), failing the stream instead: a store-gateway
// killed mid-answer.
type failAfterFirst struct{ storepb.StoreGatewayServer }

type cutStream struct {
	grpc.ServerStreamingServer[storepb.SeriesResponse]
}

func (s *cutStream) Send(r *storepb.SeriesResponse) error {
	if len(r.QueriedBlocks) == 0 {
		return s.ServerStreamingServer.Send(r)
	}
	if err := s.ServerStreamingServer.Send(&storepb.SeriesResponse{Series: r.Series}); err != nil {
		return err
	}
	return status.Error(codes.Unavailable, "killed mid-stream")
}

func (f failAfterFirst) Series(req *storepb.SeriesRequest, stream grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	return f.StoreGatewayServer.Series(req, &cutStream{ServerStreamingServer: stream})
}

// A store-gateway that dies after sending part of its answer: the part is
// dropped and its blocks are read again from another replica.
func TestClientRetriesAfterStreamBreaks(t *testing.T) {
	f := newFixture(t, "t1")
	id := f.metas[0].ULID
	primary := new(atomic.Value)
	c := startCluster(t, f.bkt, 3, 2, func(i int, s storepb.StoreGatewayServer) storepb.StoreGatewayServer {
		return &lateWrap{StoreGatewayServer: s, self: "sg-" + string(rune('a'+i)), primary: primary, broken: failAfterFirst{s}}
	})
	primary.Store(c.sharder.Snapshot().Replicas("t1", id, nil)[0].ID)
	ms := []*labels.Matcher{matcher(labels.MatchRegexp, "__name__", ".+")}
	got, err := c.series(context.Background(), "t1", 0, 6*hour, ms, false, 0)
	require.NoError(t, err)
	require.Equal(t, reference(t, f.dirs, 0, 6*hour, ms, false), got)
	require.Positive(t, metricValue(t, c.reg, "strata_querier_store_gateway_block_retries_total"))
}

// lateWrap serves through broken on the instance named by primary.
type lateWrap struct {
	storepb.StoreGatewayServer
	self    string
	primary *atomic.Value // string
	broken  storepb.StoreGatewayServer
}

func (w *lateWrap) Series(req *storepb.SeriesRequest, stream grpc.ServerStreamingServer[storepb.SeriesResponse]) error {
	if w.self == w.primary.Load() {
		return w.broken.Series(req, stream)
	}
	return w.StoreGatewayServer.Series(req, stream)
}
