package distributor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// The standard request of DESIGN.md: 2,000 series of 10 node_exporter-like
// labels and one sample each, snappy-compressed.
const benchSeries = 2000

func standardBody(b *testing.B) []byte {
	return encode(b, &prompb.WriteRequest{Timeseries: nodeSeries(benchSeries)})
}

// reportPerSeries reports wall and CPU time per series; start is
// cpuTime() before the loop.
func reportPerSeries(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchSeries, "ns/series")
	reportCPUPerSeries(b, start)
}

// BenchmarkPushDecodeValidate: decompress + decode + validate, steady
// state (pooled buffers warm), and each step alone.
//
//	go test ./distributor -run '^$' -bench PushDecodeValidate -count 8
func BenchmarkPushDecodeValidate(b *testing.B) {
	h := newHarness(b, harnessOpts{})
	d := h.d
	body := standardBody(b)
	lim := d.limits.For("bench")
	steps := map[string]func(pb *pushBody, st *pushState) error{
		"decompress": func(pb *pushBody, _ *pushState) error { return d.decompress(pb) },
		"decode":     func(pb *pushBody, _ *pushState) error { return decodeRW1(pb.raw, pb.req) },
		"validate": func(_ *pushBody, st *pushState) error {
			// Idempotent: the request stays as the first run left it.
			st.val.reset(lim, false, testNow)
			st.val.validate(st.req)
			return st.val.err()
		},
	}
	all := func(pb *pushBody, st *pushState) error {
		for _, step := range []string{"decompress", "decode", "validate"} {
			if err := steps[step](pb, st); err != nil {
				return err
			}
		}
		if len(st.req.Series) != benchSeries {
			return fmt.Errorf("kept %d series", len(st.req.Series))
		}
		return nil
	}
	steps["all"] = all
	for _, name := range []string{"all", "decompress", "decode", "validate"} {
		b.Run(name, func(b *testing.B) {
			pb := d.getBody()
			defer d.putBody(pb)
			st := d.states.Get().(*pushState)
			defer d.putState(st)
			st.req = pb.req
			pb.body = append(pb.body[:0], body...)
			if err := all(pb, st); err != nil {
				b.Fatal(err)
			}
			step := steps[name]
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if err := step(pb, st); err != nil {
					b.Fatal(err)
				}
			}
			reportPerSeries(b, cpu)
		})
	}
}

// BenchmarkShard: token hash + ring lookup + per-ingester encoding of the
// standard request, over a real ring of 128 tokens per ingester.
//
//	go test ./distributor -run '^$' -bench Shard -count 8
func BenchmarkShard(b *testing.B) {
	for _, tc := range []struct{ ingesters, rf int }{{1, 1}, {3, 3}} {
		b.Run(fmt.Sprintf("RF=%d/ingesters=%d", tc.rf, tc.ingesters), func(b *testing.B) {
			r, _ := newTestRing(b, tc.ingesters, 128, tc.rf)
			_, clients, _ := newFakes(tc.ingesters)
			h := newHarness(b, harnessOpts{ring: r, clients: clients})
			d := h.d
			pb := d.getBody()
			defer d.putBody(pb)
			st := d.states.Get().(*pushState)
			defer d.putState(st)
			st.req = pb.req
			pb.body = append(pb.body[:0], standardBody(b)...)
			require.NoError(b, d.decompress(pb))
			require.NoError(b, decodeRW1(pb.raw, pb.req))
			st.val.reset(d.limits.For("bench"), false, testNow)
			st.val.validate(st.req)
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if err := d.shard(st, "bench"); err != nil {
					b.Fatal(err)
				}
				d.releaseBatches(st)
			}
			reportPerSeries(b, cpu)
		})
	}
}

// noopIngester accepts every push at once.
type noopIngester struct{ ingesterpb.IngesterClient }

func (noopIngester) Push(context.Context, *ingesterpb.PushRequest, ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	return &ingesterpb.PushResponse{}, nil
}

type noopClients struct{}

func (noopClients) Get(string) (ingesterpb.IngesterClient, error) { return noopIngester{}, nil }

// discardWriter is a ResponseWriter that keeps nothing but the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkPushHandler: the whole HTTP handler, with no-op ingesters.
//
//	go test ./distributor -run '^$' -bench PushHandler -count 8
func BenchmarkPushHandler(b *testing.B) {
	for _, tc := range []struct{ ingesters, rf int }{{1, 1}, {3, 3}} {
		b.Run(fmt.Sprintf("RF=%d/ingesters=%d", tc.rf, tc.ingesters), func(b *testing.B) {
			r, _ := newTestRing(b, tc.ingesters, 128, tc.rf)
			h := newHarness(b, harnessOpts{ring: r, clients: noopClients{}})
			body := standardBody(b)
			handler := h.d.PushHandler()
			rd := bytes.NewReader(body)
			req := newPushRequest(body)
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				clear(w.h)
				handler.ServeHTTP(w, req)
				if w.code != http.StatusNoContent {
					b.Fatalf("status %d", w.code)
				}
			}
			reportPerSeries(b, cpu)
		})
	}
}
