package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
)

// fakeIngester is ingesterpb.IngesterServer over a TSDB in a temporary
// directory, served by gRPC on a loopback port. It streams chunks exactly
// as the TSDB stores them, like the real ingester.
type fakeIngester struct {
	ingesterpb.UnimplementedIngesterServer

	id   string
	addr string
	db   *tsdb.DB
	srv  *grpc.Server
	done chan struct{}
	fail atomic.Pointer[error] // when set, every RPC fails with it
	hang atomic.Bool           // when set, every RPC waits for its context to end
	// held, when set, makes every RPC wait until the channel is closed (then
	// it is served) or its context ends.
	held atomic.Pointer[chan struct{}]
	// scripted, when set, is what QueryStream sends, in one message.
	scripted atomic.Pointer[[]*ingesterpb.StreamSeries]

	mu       sync.Mutex
	metadata []*ingesterpb.MetricMetadata
}

// startFakeIngester starts a fake with the real ingester's TSDB options
// (XOR chunks, no start timestamps), or with start timestamps stored (XOR2
// chunks), as the ingester will once remote-write 2.0 carries them.
func startFakeIngester(t testing.TB, id string, startTimestamps bool) *fakeIngester {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = int64(24 * time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	opts.RetentionDuration = 0
	opts.WALSegmentSize = -1 // no WAL: a fake never restarts
	opts.StripeSize = 64     // few series; the default allocates 16,384 maps
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = 1e5
	if startTimestamps {
		opts.EnableSTStorage = true
		opts.FloatChunkEncoding = chunkenc.EncXOR2
		opts.EnableHistogramSTEncoding = true
	}
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeIngester{id: id, addr: lis.Addr().String(), db: db, done: make(chan struct{})}
	f.srv = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := f.wait(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := f.wait(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	ingesterpb.RegisterIngesterServer(f.srv, f)
	go func() {
		defer close(f.done)
		_ = f.srv.Serve(lis)
	}()
	return f
}

// wait holds an RPC while the fake hangs or is held, and returns ctx's
// error as gRPC status when the call ended first.
func (f *fakeIngester) wait(ctx context.Context) error {
	var release <-chan struct{}
	switch {
	case f.hang.Load():
	case f.held.Load() != nil:
		release = *f.held.Load()
	default:
		return nil
	}
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// stop stops serving and closes the TSDB; it may be called twice.
func (f *fakeIngester) stop() {
	f.srv.Stop()
	<-f.done
	_ = f.db.Close()
}

func (f *fakeIngester) setFailure(err error) {
	if err == nil {
		f.fail.Store(nil)
		return
	}
	f.fail.Store(&err)
}

func (f *fakeIngester) failure() error {
	if p := f.fail.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fakeIngester) QueryStream(r *ingesterpb.QueryRequest, stream grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]) error {
	if err := f.failure(); err != nil {
		return err
	}
	if s := f.scripted.Load(); s != nil {
		return stream.Send(&ingesterpb.QueryStreamResponse{Series: *s})
	}
	ms, err := fromProtoMatchers(r.GetMatchers())
	if err != nil {
		return err
	}
	q, err := f.db.ChunkQuerier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return err
	}
	defer q.Close()
	// DisableTrimming: chunks as stored, not re-encoded to [start, end];
	// the querier trims.
	set := q.Select(stream.Context(), true, &storage.SelectHints{Start: r.GetStartMs(), End: r.GetEndMs(), DisableTrimming: true}, ms...)
	var resp ingesterpb.QueryStreamResponse
	n := int64(0)
	for set.Next() && (r.GetLimit() == 0 || n < r.GetLimit()) {
		s := set.At()
		ss := &ingesterpb.StreamSeries{Labels: toProtoLabels(s.Labels())}
		it := s.Iterator(nil)
		for it.Next() {
			m := it.At()
			ss.Chunks = append(ss.Chunks, &ingesterpb.Chunk{
				MinTimeMs: m.MinTime, MaxTimeMs: m.MaxTime,
				Encoding: uint32(m.Chunk.Encoding()), Data: slices.Clone(m.Chunk.Bytes()),
			})
		}
		if err := it.Err(); err != nil {
			return err
		}
		resp.Series = append(resp.Series, ss)
		n++
		if len(resp.Series) == 64 {
			if err := stream.Send(&resp); err != nil {
				return err
			}
			resp.Series = nil
		}
	}
	if err := set.Err(); err != nil {
		return err
	}
	if len(resp.Series) > 0 {
		return stream.Send(&resp)
	}
	return nil
}

func (f *fakeIngester) Series(r *ingesterpb.SeriesRequest, stream grpc.ServerStreamingServer[ingesterpb.SeriesResponse]) error {
	if err := f.failure(); err != nil {
		return err
	}
	ms, err := fromProtoMatchers(r.GetMatchers())
	if err != nil {
		return err
	}
	q, err := f.db.Querier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return err
	}
	defer q.Close()
	set := q.Select(stream.Context(), true, &storage.SelectHints{Start: r.GetStartMs(), End: r.GetEndMs(), Func: "series", Limit: int(r.GetLimit())}, ms...)
	var resp ingesterpb.SeriesResponse
	for set.Next() {
		resp.Series = append(resp.Series, &ingesterpb.LabelSet{Labels: toProtoLabels(set.At().Labels())})
	}
	if err := set.Err(); err != nil {
		return err
	}
	return stream.Send(&resp)
}

func (f *fakeIngester) LabelNames(ctx context.Context, r *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	ms, err := fromProtoMatchers(r.GetMatchers())
	if err != nil {
		return nil, err
	}
	q, err := f.db.Querier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return nil, err
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: int(r.GetLimit())}, ms...)
	return &ingesterpb.LabelNamesResponse{Names: slices.Clone(names)}, err
}

func (f *fakeIngester) LabelValues(ctx context.Context, r *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	ms, err := fromProtoMatchers(r.GetMatchers())
	if err != nil {
		return nil, err
	}
	q, err := f.db.Querier(r.GetStartMs(), r.GetEndMs())
	if err != nil {
		return nil, err
	}
	defer q.Close()
	vals, _, err := q.LabelValues(ctx, r.GetName(), &storage.LabelHints{Limit: int(r.GetLimit())}, ms...)
	return &ingesterpb.LabelValuesResponse{Values: slices.Clone(vals)}, err
}

func (f *fakeIngester) QueryExemplars(_ context.Context, r *ingesterpb.ExemplarsRequest) (*ingesterpb.ExemplarsResponse, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	var sets [][]*labels.Matcher
	for _, s := range r.GetMatcherSets() {
		ms, err := fromProtoMatchers(s.GetMatchers())
		if err != nil {
			return nil, err
		}
		sets = append(sets, ms)
	}
	eq, err := f.db.ExemplarQuerier(context.Background())
	if err != nil {
		return nil, err
	}
	res, err := eq.Select(r.GetStartMs(), r.GetEndMs(), sets...)
	if err != nil {
		return nil, err
	}
	resp := &ingesterpb.ExemplarsResponse{}
	for _, qr := range res {
		es := &ingesterpb.ExemplarSeries{Labels: toProtoLabels(qr.SeriesLabels)}
		for _, e := range qr.Exemplars {
			es.Exemplars = append(es.Exemplars, &ingesterpb.Exemplar{Labels: toProtoLabels(e.Labels), Value: e.Value, Timestamp: e.Ts})
		}
		resp.Series = append(resp.Series, es)
	}
	return resp, nil
}

func (f *fakeIngester) Metadata(_ context.Context, r *ingesterpb.MetadataRequest) (*ingesterpb.MetadataResponse, error) {
	if err := f.failure(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &ingesterpb.MetadataResponse{}
	for _, m := range f.metadata {
		if r.GetMetric() == "" || m.GetMetricFamilyName() == r.GetMetric() {
			resp.Metadata = append(resp.Metadata, m)
		}
	}
	return resp, nil
}

func toProtoLabels(ls labels.Labels) []*ingesterpb.Label {
	var out []*ingesterpb.Label
	ls.Range(func(l labels.Label) { out = append(out, &ingesterpb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func fromProtoMatchers(pms []*ingesterpb.LabelMatcher) ([]*labels.Matcher, error) {
	if len(pms) == 0 {
		return []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "", "")}, nil
	}
	var ms []*labels.Matcher
	for _, pm := range pms {
		t := map[ingesterpb.LabelMatcher_Type]labels.MatchType{
			ingesterpb.LabelMatcher_EQ: labels.MatchEqual, ingesterpb.LabelMatcher_NEQ: labels.MatchNotEqual,
			ingesterpb.LabelMatcher_RE: labels.MatchRegexp, ingesterpb.LabelMatcher_NRE: labels.MatchNotRegexp,
		}[pm.GetType()]
		m, err := labels.NewMatcher(t, pm.GetName(), pm.GetValue())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// staticRing is a ring whose read set never changes.
type staticRing struct{ set ring.ReplicationSet }

func (r staticRing) GetAllHealthy(ring.Operation) (ring.ReplicationSet, error) { return r.set, nil }

// cluster is RF fake ingesters and a Querier reading from them.
type cluster struct {
	ings    []*fakeIngester
	pool    *clientpool.Pool
	q       *Querier
	reg     *prometheus.Registry
	replica func(ls labels.Labels) []int // which ingesters hold a series
	stopped bool
}

type clusterOptions struct {
	ingesters, replicas int
	startTimestamps     bool // store start timestamps (see startFakeIngester)
	// zones puts ingester i in zone i%zones, with a zone-aware read set;
	// with ingesters a multiple of zones and replicas == zones, each
	// series has one replica per zone.
	zones int
	cfg   func(*Config)
	deps  func(*Deps)
}

func defaultConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return cfg
}

// startCluster starts o.ingesters fakes (3 by default); each series goes to
// o.replicas of them (2 by default, so that merging and deduplication are
// always exercised while no single ingester holds everything).
func startCluster(t testing.TB, o clusterOptions) *cluster {
	t.Helper()
	if o.ingesters == 0 {
		o.ingesters = 3
	}
	if o.replicas == 0 {
		o.replicas = min(2, o.ingesters)
	}
	c := &cluster{reg: prometheus.NewRegistry()}
	var rs ring.ReplicationSet
	for i := range o.ingesters {
		f := startFakeIngester(t, fmt.Sprintf("ingester-%d", i), o.startTimestamps)
		c.ings = append(c.ings, f)
		in := ring.Instance{ID: f.id, Addr: f.addr, State: ring.Active}
		if o.zones > 0 {
			in.Zone = fmt.Sprintf("zone-%d", i%o.zones)
		}
		rs.Instances = append(rs.Instances, in)
	}
	rs.MaxErrors = o.ingesters / 2
	if o.zones > 0 {
		rs.MaxErrors = o.replicas / 2
		rs.MaxUnavailableZones = o.replicas / 2
	}
	c.replica = func(ls labels.Labels) []int {
		h := int(ls.Hash() % uint64(o.ingesters))
		out := make([]int, o.replicas)
		for k := range out {
			out[k] = (h + k) % o.ingesters
		}
		return out
	}
	c.pool = clientpool.New(clientpool.Config{MaxMessageBytes: 100 << 20, KeepaliveTime: 20 * time.Second}, c.reg)
	cfg := defaultConfig()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	deps := Deps{Ring: staticRing{rs}, Clients: c.pool, Reg: c.reg}
	if o.deps != nil {
		o.deps(&deps)
	}
	q, err := New(cfg, deps)
	require.NoError(t, err)
	c.q = q
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.pool.Close()
	for _, f := range c.ings {
		f.stop()
	}
}

// appender writes every series to its replicas' TSDBs.
func (c *cluster) appender(ctx context.Context) storage.AppenderV2 {
	a := &replicatedAppender{c: c}
	for _, f := range c.ings {
		a.apps = append(a.apps, f.db.AppenderV2(ctx))
	}
	return a
}

type replicatedAppender struct {
	c    *cluster
	apps []storage.AppenderV2
}

func (a *replicatedAppender) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	for _, i := range a.c.replica(ls) {
		if _, err := a.apps[i].Append(0, ls, st, t, v, h, fh, opts); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func (a *replicatedAppender) Commit() error {
	var errs []error
	for _, app := range a.apps {
		errs = append(errs, app.Commit())
	}
	return errors.Join(errs...)
}

func (a *replicatedAppender) Rollback() error {
	var errs []error
	for _, app := range a.apps {
		errs = append(errs, app.Rollback())
	}
	return errors.Join(errs...)
}

// clusterStorage is a storage.Storage for promqltest: appends go to the
// fakes' TSDBs, reads through the Querier's fan-out.
type clusterStorage struct {
	c      *cluster
	tenant string
}

func (s *clusterStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.c.q.Queryable(s.tenant).Querier(mint, maxt)
}

func (s *clusterStorage) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("the querier reads samples, not chunks")
}

// Appender is storage.Appender (v1): promqltest appends with AppenderV2 only.
func (s *clusterStorage) Appender(context.Context) storage.Appender { return nil }

func (s *clusterStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return s.c.appender(ctx)
}

func (s *clusterStorage) StartTime() (int64, error) { return math.MinInt64, nil }

func (s *clusterStorage) Close() error {
	s.c.stop()
	return nil
}
