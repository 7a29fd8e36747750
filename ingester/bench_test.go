package ingester

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

// go test ./ingester -run '^$' -bench . -count 8 > new.txt; benchstat old.txt new.txt

const benchSeries = 2000 // the standard request: 2,000 series x 10 labels x 1 sample

// benchBody is a WriteRequest body of n node_exporter-like series with 10
// labels and one sample each, built so that the timestamps (6-byte varints
// for any time of this century) and the "batch" label value (8 digits) can
// be rewritten in place between pushes.
type benchBody struct {
	body     []byte
	tsOffset []int // start of each sample's timestamp varint
	batchOff []int // start of each series' batch label value
}

func newBenchBody(tb testing.TB, n int, batch int) *benchBody {
	tb.Helper()
	names := []string{"node_cpu_seconds_total", "node_memory_MemFree_bytes", "node_network_receive_bytes_total", "node_disk_io_time_seconds_total", "node_filesystem_avail_bytes"}
	b := &benchBody{}
	for k := range n {
		s := remotewrite.Series{
			Labels: []remotewrite.Label{
				{Name: "__name__", Value: names[k%len(names)]},
				{Name: "batch", Value: fmt.Sprintf("%08d", batch)},
				{Name: "cpu", Value: fmt.Sprint(k % 64)},
				{Name: "datacenter", Value: "eu-west-1"},
				{Name: "device", Value: fmt.Sprintf("sd%c", 'a'+k%8)},
				{Name: "env", Value: "production"},
				{Name: "instance", Value: fmt.Sprintf("host-%04d.example.com:9100", k/20)},
				{Name: "job", Value: "node"},
				{Name: "mode", Value: []string{"idle", "user", "system", "iowait"}[k%4]},
				{Name: "rack", Value: fmt.Sprintf("r%02d", k%40)},
			},
			Samples: []remotewrite.Sample{{Value: float64(k), Timestamp: t0}},
		}
		start := len(b.body)
		b.body = remotewrite.AppendSeries(b.body, &s)
		b.tsOffset = append(b.tsOffset, len(b.body)-6)
		// The batch label's value follows its first bytes in this entry.
		b.batchOff = append(b.batchOff, start+indexOf(b.body[start:], []byte(fmt.Sprintf("%08d", batch))))
	}
	b.setTimestamp(tb, t0)
	return b
}

func indexOf(b, sub []byte) int {
	for k := 0; k+len(sub) <= len(b); k++ {
		if string(b[k:k+len(sub)]) == string(sub) {
			return k
		}
	}
	panic("BUG: substring not found")
}

func (b *benchBody) setTimestamp(tb testing.TB, ts int64) {
	var buf [binary.MaxVarintLen64]byte
	if n := binary.PutUvarint(buf[:], uint64(ts)); n != 6 {
		tb.Fatalf("timestamp %d is a %d-byte varint, want 6", ts, n)
	}
	for _, off := range b.tsOffset {
		copy(b.body[off:], buf[:6])
	}
}

func (b *benchBody) setBatch(batch int) {
	v := fmt.Appendf(nil, "%08d", batch)
	for _, off := range b.batchOff {
		copy(b.body[off:], v)
	}
}

func benchIngester(b *testing.B) *Ingester {
	b.Helper()
	ing := newIngester(b, defaultConfig(b), Deps{DataDir: b.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	waitReady(b, ing)
	return ing
}

// BenchmarkPush appends the standard request to series that exist already:
// the steady state of an ingester. One op is one request of 2,000 samples.
func BenchmarkPush(b *testing.B) {
	ing := benchIngester(b)
	body := newBenchBody(b, benchSeries, 0)
	req := &ingesterpb.PushRequest{Tenant: "bench", WriteRequest: body.body}
	ctx := context.Background()
	if _, err := ing.Push(ctx, req); err != nil { // creates the series
		b.Fatal(err)
	}
	ts := t0
	b.ReportAllocs()
	b.SetBytes(int64(len(body.body)))
	for b.Loop() {
		ts += 1000 // 1 s apart: hours of benchmark stay inside one head block
		body.setTimestamp(b, ts)
		if _, err := ing.Push(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/sample")
}

// BenchmarkPushNewSeries appends requests of 2,000 series the head has never
// seen: the cost of series creation (label copy, postings, WAL series record).
func BenchmarkPushNewSeries(b *testing.B) {
	ing := benchIngester(b)
	body := newBenchBody(b, benchSeries, 0)
	req := &ingesterpb.PushRequest{Tenant: "bench", WriteRequest: body.body}
	ctx := context.Background()
	batch := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(body.body)))
	for b.Loop() {
		batch++
		body.setBatch(batch)
		if _, err := ing.Push(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/series")
}

// discardStream is a QueryStream server stream that marshals each message,
// as gRPC would, and drops it.
type discardStream struct {
	grpc.ServerStreamingServer[ingesterpb.QueryStreamResponse]
	ctx    context.Context
	buf    []byte
	series int
}

func (s *discardStream) Context() context.Context { return s.ctx }

func (s *discardStream) Send(m *ingesterpb.QueryStreamResponse) error {
	var err error
	s.buf, err = proto.MarshalOptions{}.MarshalAppend(s.buf[:0], m)
	s.series += len(m.Series)
	return err
}

// BenchmarkQueryStream streams 2,000 series of 2 h at 15 s (4 chunks each,
// one of them the open head chunk, which is copied).
func BenchmarkQueryStream(b *testing.B) {
	ing := benchIngester(b)
	body := newBenchBody(b, benchSeries, 0)
	ctx := context.Background()
	const samples = 2 * 3600 / 15
	for k := range samples {
		body.setTimestamp(b, t0+int64(k)*15000)
		if _, err := ing.Push(ctx, &ingesterpb.PushRequest{Tenant: "bench", WriteRequest: body.body}); err != nil {
			b.Fatal(err)
		}
	}
	req := &ingesterpb.QueryRequest{
		Tenant: "bench", StartMs: t0, EndMs: t0 + samples*15000,
		Matchers: []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_EQ, Name: "job", Value: "node"}},
	}
	stream := &discardStream{ctx: ctx}
	b.ReportAllocs()
	for b.Loop() {
		stream.series = 0
		if err := ing.QueryStream(req, stream); err != nil {
			b.Fatal(err)
		}
		if stream.series != benchSeries {
			b.Fatalf("streamed %d series, want %d", stream.series, benchSeries)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSeries), "ns/series")
}

// BenchmarkPushChurnParallel pushes from several senders at once, each its
// own 2,000 series of which 20 (1%) are new in every request: pods rolling
// in a busy tenant. Pushes that create series take the tenant's append lock
// exclusively (push.go: appendRequest), so this is the cost of that order
// under churn. One op is one request.
func BenchmarkPushChurnParallel(b *testing.B) {
	ing := benchIngester(b)
	ctx := context.Background()
	var workers atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := int(workers.Add(1))
		body := newBenchBody(b, benchSeries, w*10_000_000)
		req := &ingesterpb.PushRequest{Tenant: "bench", WriteRequest: body.body}
		if _, err := ing.Push(ctx, req); err != nil {
			b.Error(err)
			return
		}
		ts, batch := t0, w*10_000_000
		for pb.Next() {
			ts += 1000
			batch++
			body.setTimestamp(b, ts)
			body.setBatchOf(20, batch)
			if _, err := ing.Push(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// setBatchOf rewrites the batch label of the first n series only.
func (b *benchBody) setBatchOf(n, batch int) {
	v := fmt.Appendf(nil, "%08d", batch)
	for _, off := range b.batchOff[:n] {
		copy(b.body[off:], v)
	}
}
