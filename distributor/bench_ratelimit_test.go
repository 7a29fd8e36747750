package distributor

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/strata-metrics/strata/limits"
)

// BenchmarkRefusedPush is the cost of one push of the standard body (2,000
// series) that its tenant's ingestion rate limit refuses: the tenant has
// spent its burst and floods far over its rate, as the noisy neighbour of
// strata-bench -mode=noisy does. A refused push should cost far less than an accepted one
// (BenchmarkPushHandler), or the flood takes every other tenant's CPU.
//
//	go test ./distributor -run '^$' -bench RefusedPush -count 8
func BenchmarkRefusedPush(b *testing.B) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 1e-9, benchSeries, limits.StrategyLocal
	h := newHarness(b, harnessOpts{limits: &lim, multitenancy: true})
	body := standardBody(b)
	handler := h.d.PushHandler()
	rd := bytes.NewReader(body)
	req := newPushRequest(body)
	req.Header.Set("X-Scope-OrgID", "noisy")
	w := &discardWriter{h: http.Header{}}
	push := func() int {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.h)
		handler.ServeHTTP(w, req)
		return w.code
	}
	if code := push(); code != http.StatusNoContent {
		b.Fatalf("first push: status %d", code)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if code := push(); code != http.StatusTooManyRequests {
			b.Fatalf("status %d", code)
		}
	}
	reportPerSeries(b, cpu)
}

// BenchmarkRefusedPushLoopback is BenchmarkRefusedPush over real HTTP on
// loopback, one kept-alive connection: the whole cost of a refused push,
// the sender's included (both run in this process). conns/op is the new
// connections per push: 0 when the refused body leaves the connection
// usable for the next push.
//
//	go test ./distributor -run '^$' -bench RefusedPushLoopback -count 8
func BenchmarkRefusedPushLoopback(b *testing.B) {
	lim := defaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize, lim.IngestionRateStrategy = 1e-9, benchSeries, limits.StrategyLocal
	h := newHarness(b, harnessOpts{limits: &lim, multitenancy: true})
	body := standardBody(b)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h.d.PushHandler())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	b.Cleanup(srv.Close)
	client := srv.Client()
	b.Cleanup(client.CloseIdleConnections)
	push := func() int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/push", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Scope-OrgID", "noisy")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := push(); code != http.StatusNoContent {
		b.Fatalf("first push: status %d", code)
	}
	start := conns.Load()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if code := push(); code != http.StatusTooManyRequests {
			b.Fatalf("status %d", code)
		}
	}
	reportPerSeries(b, cpu)
	b.ReportMetric(float64(conns.Load()-start)/float64(b.N), "conns/op")
}
