package distributor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testNow is the clock of every test: sample timestamps are near it.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var testNowMs = testNow.UnixMilli()

// defaultConfig returns the flag defaults.
func defaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func defaultLimits() limits.Limits {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return l
}

// fakeIngester records what it is pushed and answers with reply.
type fakeIngester struct {
	ingesterpb.IngesterClient // nil: only Push is called

	id    string
	reply func(ctx context.Context) error // nil: success

	mu     sync.Mutex
	pushes []*ingesterpb.PushRequest // copies
}

func (f *fakeIngester) Push(ctx context.Context, in *ingesterpb.PushRequest, _ ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	f.mu.Lock()
	f.pushes = append(f.pushes, &ingesterpb.PushRequest{Tenant: in.Tenant, WriteRequest: bytes.Clone(in.WriteRequest)})
	reply := f.reply
	f.mu.Unlock()
	if reply != nil {
		if err := reply(ctx); err != nil {
			return nil, err
		}
	}
	return &ingesterpb.PushResponse{}, nil
}

// received decodes everything f was pushed with prompb's own decoder (an
// independent check of remotewrite's encoder), in push order.
func (f *fakeIngester) received(t testing.TB) (tenants []string, wr prompb.WriteRequest) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pushes {
		var one prompb.WriteRequest
		require.NoError(t, one.Unmarshal(p.WriteRequest))
		tenants = append(tenants, p.Tenant)
		wr.Timeseries = append(wr.Timeseries, one.Timeseries...)
		wr.Metadata = append(wr.Metadata, one.Metadata...)
	}
	return tenants, wr
}

func (f *fakeIngester) pushCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pushes)
}

// Replies of fake ingesters.
func replyClass(class ingesterpb.ErrorClass, msg string) func(context.Context) error {
	return func(context.Context) error {
		st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&ingesterpb.ErrorDetails{Class: class})
		if err != nil {
			panic(err)
		}
		return st.Err()
	}
}

func replyCode(c codes.Code, msg string) func(context.Context) error {
	return func(context.Context) error { return status.Error(c, msg) }
}

// replyHang blocks until the push's deadline, as a stuck ingester.
func replyHang(ctx context.Context) error {
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

// fakeClients maps addresses to fake ingesters; unknown ones fail to dial.
type fakeClients map[string]*fakeIngester

func (c fakeClients) Get(addr string) (ingesterpb.IngesterClient, error) {
	if f, ok := c[addr]; ok {
		return f, nil
	}
	return nil, fmt.Errorf("dial %s: no such fake", addr)
}

// fakeRing puts every series on all of its instances.
type fakeRing struct {
	instances []ring.Instance
	maxErrors int
	err       error
}

func (r *fakeRing) Get(_ uint32, _ ring.Operation, buf []ring.Instance) (ring.ReplicationSet, error) {
	if r.err != nil {
		return ring.ReplicationSet{}, r.err
	}
	return ring.ReplicationSet{Instances: append(buf[:0], r.instances...), MaxErrors: r.maxErrors}, nil
}

// newFakes returns n fake ingesters "ing-0".. at "addr-0".. and a ring
// placing every series on all of them with a majority quorum.
func newFakes(n int) ([]*fakeIngester, fakeClients, *fakeRing) {
	ings := make([]*fakeIngester, n)
	clients := fakeClients{}
	fr := &fakeRing{maxErrors: n - (n/2 + 1)}
	for i := range n {
		ings[i] = &fakeIngester{id: fmt.Sprintf("ing-%d", i)}
		addr := fmt.Sprintf("addr-%d", i)
		clients[addr] = ings[i]
		fr.instances = append(fr.instances, ring.Instance{ID: ings[i].id, Addr: addr, State: ring.Active})
	}
	return ings, clients, fr
}

// harness is a Distributor over fakes, with Run going until the test ends.
type harness struct {
	d    *Distributor
	ings []*fakeIngester
	ring *fakeRing
	reg  *prometheus.Registry
}

type harnessOpts struct {
	cfg          *Config
	limits       *limits.Limits
	ingesters    int // 1 when 0
	multitenancy bool
	ring         ReplicaPicker // the fake ring when nil
	clients      IngesterClients
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	cfg := defaultConfig()
	if o.cfg != nil {
		cfg = *o.cfg
	}
	lim := defaultLimits()
	if o.limits != nil {
		lim = *o.limits
	}
	if o.ingesters == 0 {
		o.ingesters = 1
	}
	ings, clients, fr := newFakes(o.ingesters)
	h := &harness{ings: ings, ring: fr, reg: prometheus.NewRegistry()}
	// The flag defaults, as in production: 1,000 tenants labelled.
	var mcfg tenant.MetricsConfig
	mcfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	tl, err := tenant.NewLabelCap(mcfg, h.reg, nil)
	require.NoError(t, err)
	deps := Deps{
		TenantLabels: tl,
		Ring:         fr,
		Clients:      clients,
		Limits:       limits.NewOverrides(lim),
		Tenants:      tenant.Resolver{MultitenancyEnabled: o.multitenancy},
		Log:          slog.New(slog.DiscardHandler),
		Reg:          h.reg,
		Now:          func() time.Time { return testNow },
	}
	if o.ring != nil {
		deps.Ring = o.ring
	}
	if o.clients != nil {
		deps.Clients = o.clients
	}
	d, err := New(cfg, deps)
	require.NoError(t, err)
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return h
}

// push sends body with the standard remote-write 1.0 headers.
func (h *harness) push(t testing.TB, body []byte) (int, string) {
	t.Helper()
	return h.do(t, newPushRequest(body))
}

func (h *harness) do(t testing.TB, req *http.Request) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.d.PushHandler().ServeHTTP(rec, req)
	b, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Code, string(bytes.TrimSuffix(b, []byte("\n")))
}

func newPushRequest(body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	return req
}

// encode marshals wr with prompb (gogo) and compresses it with snappy.
func encode(t testing.TB, wr *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := wr.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// series builds a prompb series from alternating names and values, with
// one sample at testNow.
func series(nv ...string) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: []prompb.Sample{{Value: 1, Timestamp: testNowMs}}}
	for i := 0; i+1 < len(nv); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	return ts
}

func withSamples(ts prompb.TimeSeries, ss ...prompb.Sample) prompb.TimeSeries {
	ts.Samples = ss
	return ts
}

// sorted returns ts with its labels sorted and empty values dropped, as
// the distributor forwards it.
func sorted(ts prompb.TimeSeries) prompb.TimeSeries {
	ls := slices.DeleteFunc(slices.Clone(ts.Labels), func(l prompb.Label) bool { return l.Value == "" })
	slices.SortFunc(ls, func(a, b prompb.Label) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	ts.Labels = ls
	return ts
}

// nodeSeries returns n node_exporter-like series of 10 labels, one sample.
func nodeSeries(n int) []prompb.TimeSeries {
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	out := make([]prompb.TimeSeries, n)
	for i := range out {
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("node_cpu_seconds_total_%d", i%50)},
				{Name: "cluster", Value: "prod-eu-1"},
				{Name: "cpu", Value: fmt.Sprint(i % 16)},
				{Name: "env", Value: "production"},
				{Name: "instance", Value: fmt.Sprintf("host-%04d.example.com:9100", i/128)},
				{Name: "job", Value: "node_exporter"},
				{Name: "mode", Value: modes[i%len(modes)]},
				{Name: "region", Value: "eu-west-1"},
				{Name: "team", Value: "infrastructure"},
				{Name: "zone", Value: "eu-west-1a"},
			},
			Samples: []prompb.Sample{{Value: float64(i) * 1.5, Timestamp: testNowMs - int64(i%1000)}},
		}
	}
	return out
}

// requireSameSeries compares series, floats bit for bit (NaN included).
func requireSameSeries(t testing.TB, want, got []prompb.TimeSeries) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Labels, g.Labels, "series %d labels", i)
		require.Len(t, g.Samples, len(w.Samples), "series %d samples", i)
		for j := range w.Samples {
			require.Equal(t, w.Samples[j].Timestamp, g.Samples[j].Timestamp)
			require.Equal(t, math.Float64bits(w.Samples[j].Value), math.Float64bits(g.Samples[j].Value), "series %d sample %d", i, j)
		}
		require.Equal(t, len(w.Exemplars), len(g.Exemplars), "series %d exemplars", i)
		for j := range w.Exemplars {
			require.Equal(t, w.Exemplars[j].Labels, g.Exemplars[j].Labels)
			require.Equal(t, w.Exemplars[j].Timestamp, g.Exemplars[j].Timestamp)
		}
		require.Equal(t, len(w.Histograms), len(g.Histograms), "series %d histograms", i)
		for j := range w.Histograms {
			require.Equal(t, w.Histograms[j].Timestamp, g.Histograms[j].Timestamp)
			require.Equal(t, w.Histograms[j].PositiveSpans, g.Histograms[j].PositiveSpans)
		}
	}
}
