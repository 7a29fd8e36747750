package storegateway

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
)

// sample is a float or integer-histogram sample for tsdb.CreateBlock.
type sample struct {
	t int64
	f float64
	h *histogram.Histogram
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return s.h }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Copy() chunks.Sample           { return s }
func (s sample) Type() chunkenc.ValueType {
	if s.h != nil {
		return chunkenc.ValHistogram
	}
	return chunkenc.ValFloat
}

const (
	hour   = int64(time.Hour / time.Millisecond)
	scrape = int64(15 * time.Second / time.Millisecond)
)

// testSeries returns n float series {__name__="m", i="00000"..., job=a|b|c,
// env=prod|dev (every other one without env)} and nh histogram series
// {__name__="h", i=...}, with a sample every 15s in [from, from+span).
// Values depend on seed, so that two calls with other seeds give other
// chunks.
func testSeries(n, nh int, from, span int64, seed int) []storage.Series {
	var out []storage.Series
	for i := range n {
		lb := labels.NewScratchBuilder(4)
		lb.Add("__name__", "m")
		lb.Add("i", fmt.Sprintf("%05d", i))
		lb.Add("job", []string{"a", "b", "c"}[i%3])
		if i%2 == 0 {
			lb.Add("env", []string{"prod", "dev"}[i/2%2])
		}
		lb.Sort()
		var ss []chunks.Sample
		for t := from; t < from+span; t += scrape {
			ss = append(ss, sample{t: t, f: float64((i+seed)*1000) + float64(t/scrape%97)})
		}
		out = append(out, storage.NewListSeries(lb.Labels(), ss))
	}
	for i := range nh {
		var ss []chunks.Sample
		for t := from; t < from+span; t += 4 * scrape {
			ss = append(ss, sample{t: t, h: tsdbutil.GenerateTestHistogram(t/scrape + int64(i+seed))})
		}
		out = append(out, storage.NewListSeries(labels.FromStrings("__name__", "h", "i", fmt.Sprintf("%05d", i)), ss))
	}
	return out
}

// createBlock writes series into a new block under a temporary directory.
func createBlock(t testing.TB, series []storage.Series) string {
	t.Helper()
	// A wide head window: series are appended one after the other.
	dir, err := tsdb.CreateBlock(series, t.TempDir(), 100*hour, promslog.NewNopLogger())
	require.NoError(t, err)
	return dir
}

// uploadBlock uploads the block in dir for tenantID.
func uploadBlock(t testing.TB, bkt objstore.Bucket, tenantID, dir string) *block.Meta {
	t.Helper()
	m, err := block.Upload(context.Background(), objstore.NewPrefixedBucket(bkt, tenantID), dir, block.Ext{Tenant: tenantID, Source: block.SourceIngester})
	require.NoError(t, err)
	return m
}

type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func testConfig(t testing.TB) Config {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	cfg.DataDir = t.TempDir()
	return cfg
}

// harness is one store-gateway over bkt, served over an in-memory gRPC
// connection.
type harness struct {
	g      *StoreGateway
	reg    *prometheus.Registry
	clock  *fakeClock
	client storepb.StoreGatewayClient
}

func newHarness(t testing.TB, bkt objstore.Bucket, cfg Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), clock: newFakeClock()}
	lister := bucketindex.NewBucketLister(bkt)
	g, err := New(cfg, Deps{
		Bucket: bkt, Blocks: lister, Tenants: lister.Tenants,
		Log: slog.New(slog.DiscardHandler), Reg: h.reg, Now: h.clock.Now,
	})
	require.NoError(t, err)
	h.g = g
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	storepb.RegisterStoreGatewayServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	h.client = storepb.NewStoreGatewayClient(conn)
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		g.close()
	})
	return h
}

func (h *harness) counter(t testing.TB, name string, lvs ...string) float64 {
	t.Helper()
	return metricValue(t, h.reg, name, lvs...)
}

// metricValue sums the samples of metric name whose label values include
// lvs.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, lvs ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, want := range lvs {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == want }) {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// gotChunk is a chunk of an answer or of the reference, comparable.
type gotChunk struct {
	MinT, MaxT int64
	Enc        chunkenc.Encoding
	Data       string
}

type gotSeries struct {
	Labels string
	Chunks []gotChunk
}

// callSeries calls Series and collects the answer; a block error is an
// error.
func callSeries(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest) ([]gotSeries, []string, error) {
	out, queried, failed, err := callSeriesFull(ctx, c, req)
	if err == nil && len(failed) > 0 {
		err = fmt.Errorf("block errors: %v", failed)
	}
	return out, queried, err
}

// callSeriesFull calls Series and collects the answer, block errors apart.
func callSeriesFull(ctx context.Context, c storepb.StoreGatewayClient, req *storepb.SeriesRequest) ([]gotSeries, []string, []*storepb.BlockError, error) {
	stream, err := c.Series(ctx, req)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		out     []gotSeries
		queried []string
		failed  []*storepb.BlockError
		b       labels.ScratchBuilder
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, queried, failed, nil
		}
		if err != nil {
			return nil, nil, nil, err
		}
		failed = append(failed, resp.GetBlockErrors()...)
		for _, ss := range resp.GetSeries() {
			b.Reset()
			for _, l := range ss.GetLabels() {
				b.Add(l.GetName(), l.GetValue())
			}
			g := gotSeries{Labels: b.Labels().String()}
			for _, c := range ss.GetChunks() {
				g.Chunks = append(g.Chunks, gotChunk{c.GetMinTimeMs(), c.GetMaxTimeMs(), chunkenc.Encoding(c.GetEncoding()), string(c.GetData())})
			}
			out = append(out, g)
		}
		queried = append(queried, resp.GetQueriedBlocks()...)
	}
}

// reference is what Prometheus' own block querier returns for the blocks
// in dirs: per series, the chunks overlapping [mint, maxt] as stored, those
// of every block (replicas' identical copies too), sorted by time; series
// sorted by labels.
func reference(t testing.TB, dirs []string, mint, maxt int64, ms []*labels.Matcher, skipChunks bool) []gotSeries {
	t.Helper()
	bySeries := map[string][]gotChunk{}
	for _, dir := range dirs {
		b, err := tsdb.OpenBlock(nil, dir, nil, nil)
		require.NoError(t, err)
		q, err := tsdb.NewBlockChunkQuerier(b, mint, maxt)
		require.NoError(t, err)
		set := q.Select(context.Background(), true, &storage.SelectHints{Start: mint, End: maxt, DisableTrimming: true}, ms...)
		var it chunks.Iterator
		for set.Next() {
			s := set.At()
			key := s.Labels().String()
			cs := bySeries[key]
			if cs == nil {
				cs = []gotChunk{}
			}
			it = s.Iterator(it)
			for it.Next() {
				m := it.At()
				if !skipChunks {
					cs = append(cs, gotChunk{m.MinTime, m.MaxTime, m.Chunk.Encoding(), string(m.Chunk.Bytes())})
				}
			}
			require.NoError(t, it.Err())
			bySeries[key] = cs
		}
		require.NoError(t, set.Err())
		require.NoError(t, q.Close())
		require.NoError(t, b.Close())
	}
	var out []gotSeries
	for k, cs := range bySeries {
		slices.SortFunc(cs, func(a, b gotChunk) int {
			if c := cmp.Compare(a.MinT, b.MinT); c != 0 {
				return c
			}
			if c := cmp.Compare(a.MaxT, b.MaxT); c != 0 {
				return c
			}
			return cmp.Compare(a.Data, b.Data)
		})
		if len(cs) == 0 {
			cs = nil
		}
		out = append(out, gotSeries{Labels: k, Chunks: cs})
	}
	slices.SortFunc(out, func(a, b gotSeries) int { return cmp.Compare(a.Labels, b.Labels) })
	return out
}

// sortChunks orders an answer's chunks as reference does (identical
// min/max times broken by data), for comparison.
func sortChunks(ss []gotSeries) []gotSeries {
	for _, s := range ss {
		slices.SortStableFunc(s.Chunks, func(a, b gotChunk) int {
			if c := cmp.Compare(a.MinT, b.MinT); c != 0 {
				return c
			}
			if c := cmp.Compare(a.MaxT, b.MaxT); c != 0 {
				return c
			}
			return cmp.Compare(a.Data, b.Data)
		})
	}
	return ss
}

func protoMatchers(t testing.TB, ms []*labels.Matcher) []*ingesterpb.LabelMatcher {
	t.Helper()
	out := make([]*ingesterpb.LabelMatcher, len(ms))
	for i, m := range ms {
		out[i] = &ingesterpb.LabelMatcher{Type: ingesterpb.LabelMatcher_Type(m.Type), Name: m.Name, Value: m.Value}
	}
	return out
}

func mustMatchers(t testing.TB, s string) []*labels.Matcher {
	t.Helper()
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
	require.NoError(t, err)
	return ms
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
