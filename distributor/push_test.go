package distributor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestPushHandlerAbuse sends malformed and abusive requests, one after the
// other, to one distributor, checking each status, message and what
// reached the ingester; at the end a good push must still go through
// intact (no pooled state was corrupted on the way).
func TestPushHandlerAbuse(t *testing.T) {
	cfg := defaultConfig()
	cfg.MaxRecvMsgSize = 64 << 10
	lim := defaultLimits()
	lim.PastGracePeriod = 24 * time.Hour
	h := newHarness(t, harnessOpts{cfg: &cfg, limits: &lim, multitenancy: true})

	good := series("__name__", "up", "instance", "h:9100", "job", "node")
	goodBody := encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good}})
	raw, err := (&prompb.WriteRequest{Timeseries: nodeSeries(20)}).Marshal()
	require.NoError(t, err)

	random := make([]byte, 100<<10)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	random[0] = 0x7f                                        // a small decoded length: the rest is what is corrupt
	hugeHeader := binary.AppendUvarint(nil, math.MaxUint32) // claims 4 GiB
	hugeHeader = append(hugeHeader, 0x00, 0x01, 0x02)
	lyingHeader := binary.AppendUvarint(nil, 60000) // under the limit, but 6 bytes cannot expand to it
	lyingHeader = append(lyingHeader, 0x00, 0x01, 0x02)

	post := func(body []byte, hdr ...string) func() *http.Request {
		return func() *http.Request {
			r := newPushRequest(body)
			r.Header.Set("X-Scope-OrgID", "team-a")
			for i := 0; i+1 < len(hdr); i += 2 {
				if hdr[i+1] == "" {
					r.Header.Del(hdr[i])
				} else {
					r.Header.Set(hdr[i], hdr[i+1])
				}
			}
			return r
		}
	}
	chunked := func(body []byte) func() *http.Request {
		return func() *http.Request {
			r := post(body)()
			r.ContentLength = -1
			return r
		}
	}
	method := func(m string) func() *http.Request {
		return func() *http.Request {
			r := post(goodBody)()
			r.Method = m
			return r
		}
	}
	one := func(ts prompb.TimeSeries) []byte {
		return encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}})
	}

	for _, tc := range []struct {
		name       string
		req        func() *http.Request
		wantCode   int
		wantMsg    string // exact; or
		wantPrefix string // for messages made by the protobuf decoder
		want       []prompb.TimeSeries
	}{
		{name: "wrong method GET", req: method(http.MethodGet), wantCode: 405,
			wantMsg: "method GET not allowed: remote-write uses POST"},
		{name: "wrong method PUT", req: method(http.MethodPut), wantCode: 405,
			wantMsg: "method PUT not allowed: remote-write uses POST"},
		{name: "tenant header missing", req: post(goodBody, "X-Scope-OrgID", ""), wantCode: 401,
			wantMsg: "no tenant id: set the X-Scope-OrgID header"},
		{name: "tenant id with a path", req: post(goodBody, "X-Scope-OrgID", "../etc"), wantCode: 400,
			wantMsg: `invalid tenant id "../etc": character '/' at byte 2 is not allowed (letters, digits and !-_.*'() only)`},
		{name: "tenant id too long", req: post(goodBody, "X-Scope-OrgID", strings.Repeat("a", 151)), wantCode: 400,
			wantMsg: `invalid tenant id "` + strings.Repeat("a", 64) + `...": 151 bytes long, limit 150`},
		{name: "garbage body", req: post([]byte("this is not snappy at all, just text")), wantCode: 400,
			wantMsg: "decompress body: snappy: corrupt input [strata-invalid-snappy]"},
		{name: "random bytes", req: post(random[:1000]), wantCode: 400,
			wantMsg: "decompress body: snappy: corrupt input [strata-invalid-snappy]"},
		{name: "zero-length body", req: post(nil), wantCode: 400,
			wantMsg: "empty body: remote-write sends a snappy-compressed protobuf WriteRequest [strata-invalid-snappy]"},
		{name: "truncated snappy", req: post(snappy.Encode(nil, raw)[:200]), wantCode: 400,
			wantMsg: "decompress body: snappy header claims 5042 bytes from a 200-byte body, more than snappy can expand to [strata-invalid-snappy]"},
		{name: "truncated snappy, header still plausible", req: post(snappy.Encode(nil, raw)[:400]), wantCode: 400,
			wantMsg: "decompress body: snappy: corrupt input [strata-invalid-snappy]"},
		{name: "snappy header claims 4 GiB", req: post(hugeHeader), wantCode: 413,
			wantMsg: "decompressed body of 4294967295 bytes exceeds the limit of 65536 bytes (-distributor.max-recv-msg-size=65536, decompressed) [strata-request-too-large]"},
		{name: "snappy header claims more than the body can expand to", req: post(lyingHeader), wantCode: 400,
			wantMsg: "decompress body: snappy header claims 60000 bytes from a 6-byte body, more than snappy can expand to [strata-invalid-snappy]"},
		{name: "snappy at its densest is not a lie", req: post(snappy.Encode(nil, make([]byte, 60000))), wantCode: 400,
			wantPrefix: "decode write request: "},
		{name: "decompresses beyond the limit", req: post(snappy.Encode(nil, make([]byte, 70<<10))), wantCode: 413,
			wantMsg: "decompressed body of 71680 bytes exceeds the limit of 65536 bytes (-distributor.max-recv-msg-size=65536, decompressed) [strata-request-too-large]"},
		{name: "compressed body over the limit", req: post(random), wantCode: 413,
			wantMsg: "compressed body of 102400 bytes exceeds the limit of 76490 bytes (-distributor.max-recv-msg-size=65536, decompressed) [strata-request-too-large]"},
		{name: "compressed body over the limit, no Content-Length", req: chunked(random), wantCode: 413,
			wantMsg: "compressed body exceeds the limit of 76490 bytes (-distributor.max-recv-msg-size=65536, decompressed) [strata-request-too-large]"},
		{name: "snappy of garbage protobuf", req: post(snappy.Encode(nil, []byte{0xff, 0xff, 0xff, 0xff})), wantCode: 400,
			wantPrefix: "decode write request: "},
		{name: "truncated protobuf", req: post(snappy.Encode(nil, raw[:len(raw)/2])), wantCode: 400,
			wantPrefix: "decode write request: "},
		{name: "wrong wire type", req: post(snappy.Encode(nil, []byte{0x08, 0x01})), wantCode: 400,
			wantPrefix: "decode write request: "},
		{name: "empty write request", req: post(snappy.Encode(nil, nil)), wantCode: 204},
		{name: "gzip content encoding", req: post(goodBody, "Content-Encoding", "gzip"), wantCode: 415,
			wantMsg: `unsupported Content-Encoding "gzip": remote-write bodies are snappy-compressed (block format) [strata-unsupported-content-encoding]`},
		{name: "remote-write 2.0 type, 1.0 body", req: post(goodBody, "Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"), wantCode: 400,
			wantMsg: "decode write request v2: field 1 at offset 0 is reserved in remote-write 2.0 (1.0 has its timeseries and metadata there): is a 1.0 body sent with Content-Type proto=io.prometheus.write.v2.Request? [strata-invalid-protobuf]"},
		{name: "json content type", req: post(goodBody, "Content-Type", "application/json"), wantCode: 415,
			wantMsg: `unsupported Content-Type "application/json": remote-write sends application/x-protobuf [strata-unsupported-content-type]`},
		{name: "unknown proto message", req: post(goodBody, "Content-Type", "application/x-protobuf;proto=foo.Bar"), wantCode: 415,
			wantMsg: `unsupported remote-write message "foo.Bar" in Content-Type: proto=prometheus.WriteRequest (1.0) and proto=io.prometheus.write.v2.Request (2.0) are accepted [strata-unsupported-content-type]`},
		{name: "no content encoding, as Prometheus accepts", req: post(goodBody, "Content-Encoding", ""), wantCode: 204,
			want: []prompb.TimeSeries{good}},
		{name: "no content type, as Prometheus accepts", req: post(goodBody, "Content-Type", ""), wantCode: 204,
			want: []prompb.TimeSeries{good}},
		{name: "explicit 1.0 message with spaces", req: post(goodBody, "Content-Type", "application/x-protobuf; proto=prometheus.WriteRequest"), wantCode: 204,
			want: []prompb.TimeSeries{good}},
		{name: "invalid utf8 value", req: post(one(series("__name__", "up", "job", "\xff"))), wantCode: 400,
			wantMsg: `series {__name__="up", job="\xff"} has a value that is not valid UTF-8 for label "job" [strata-invalid-label-value]`},
		{name: "duplicate labels", req: post(one(series("__name__", "up", "a", "1", "a", "1"))), wantCode: 400,
			wantMsg: `series {__name__="up", a="1", a="1"} has duplicate label name "a" [strata-duplicate-label-names]`},
		{name: "too many labels", req: post(one(series(manyLabels(31)...))), wantCode: 400,
			wantPrefix: `series {__name__="up", l00="v", l01="v", `},
		{name: "thousands of labels", req: post(snappy.Encode(nil, thousandsOfLabels())), wantCode: 400,
			wantPrefix: `series {l0000000="v", l0000001="v", `},
		{name: "bad label name", req: post(one(series("__name__", "up", "ünï", "v"))), wantCode: 400,
			wantMsg: `series {__name__="up", "ünï"="v"} has invalid label name "ünï" (the legacy charset [a-zA-Z_][a-zA-Z0-9_]*; -distributor.name-validation-scheme=utf8 accepts any UTF-8) [strata-invalid-label-name]`},
		{name: "missing metric name", req: post(one(series("job", "a"))), wantCode: 400,
			wantMsg: `series {job="a"} has no metric name (label __name__) [strata-missing-metric-name]`},
		{name: "NaN and Inf accepted", wantCode: 204,
			req:  post(one(withSamples(good, prompb.Sample{Value: math.NaN(), Timestamp: testNowMs}, prompb.Sample{Value: math.Inf(-1), Timestamp: testNowMs + 1}))),
			want: []prompb.TimeSeries{withSamples(good, prompb.Sample{Value: math.NaN(), Timestamp: testNowMs}, prompb.Sample{Value: math.Inf(-1), Timestamp: testNowMs + 1})}},
		{name: "future timestamp", req: post(one(withSamples(good, prompb.Sample{Value: 1, Timestamp: math.MaxInt64}))), wantCode: 400,
			wantPrefix: `series {__name__="up", instance="h:9100", job="node"} has a sample at 9223372036854775807 ms since 1970 (not a date), `},
		{name: "MinInt64 timestamp", req: post(one(withSamples(good, prompb.Sample{Value: 1, Timestamp: math.MinInt64}))), wantCode: 400,
			wantPrefix: `series {__name__="up", instance="h:9100", job="node"} has a sample at -9223372036854775808 ms since 1970 (not a date), `},
		{name: "too old", req: post(one(withSamples(good, prompb.Sample{Value: 1, Timestamp: 1}))), wantCode: 400,
			wantMsg: `series {__name__="up", instance="h:9100", job="node"} has a sample at 1970-01-01T00:00:00.001Z, 498779h59m59.999s in the past, limit 24h0m0s (-validation.past-grace-period, override "past_grace_period") [strata-sample-too-old]`},
		{name: "too long label value", req: post(one(series("__name__", "up", "job", strings.Repeat("x", 2049)))), wantCode: 400,
			wantPrefix: `series {__name__="up", job="xxxx`},
		{name: "too long label name", req: post(one(series("__name__", "up", strings.Repeat("x", 1025), "v"))), wantCode: 400,
			wantPrefix: `series {__name__="up", xxxx`},
		{name: "mixed request keeps the good series intact", wantCode: 400,
			req:     post(encode(t, &prompb.WriteRequest{Timeseries: append([]prompb.TimeSeries{series("__name__", "up", "a", "1", "a", "2")}, nodeSeries(20)...)})),
			wantMsg: `series {__name__="up", a="1", a="2"} has duplicate label name "a" [strata-duplicate-label-names]`,
			want:    nodeSeries(20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.ings[0].pushCount()
			code, msg := h.do(t, tc.req())
			require.Equal(t, tc.wantCode, code, msg)
			if tc.wantPrefix != "" {
				require.True(t, strings.HasPrefix(msg, tc.wantPrefix), "message %q lacks prefix %q", msg, tc.wantPrefix)
			} else {
				require.Equal(t, tc.wantMsg, msg)
			}
			if tc.wantCode == http.StatusMethodNotAllowed {
				// Allow is set by the handler; httptest keeps it on the recorder.
				rec := httptest.NewRecorder()
				h.d.PushHandler().ServeHTTP(rec, tc.req())
				require.Equal(t, http.MethodPost, rec.Header().Get("Allow"))
			}
			if tc.want == nil {
				require.Equal(t, before, h.ings[0].pushCount(), "nothing forwarded")
				return
			}
			require.Equal(t, before+1, h.ings[0].pushCount())
			h.ings[0].mu.Lock()
			last := h.ings[0].pushes[before]
			h.ings[0].mu.Unlock()
			require.Equal(t, "team-a", last.Tenant)
			var got prompb.WriteRequest
			require.NoError(t, got.Unmarshal(last.WriteRequest))
			requireSameSeries(t, tc.want, got.Timeseries)
		})
	}

	// Still serving, and nothing left over from the abuse.
	before := h.ings[0].pushCount()
	code, msg := h.do(t, post(encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(50)}))())
	require.Equal(t, 204, code, msg)
	require.Equal(t, before+1, h.ings[0].pushCount())
	h.ings[0].mu.Lock()
	last := h.ings[0].pushes[before]
	h.ings[0].mu.Unlock()
	var got prompb.WriteRequest
	require.NoError(t, got.Unmarshal(last.WriteRequest))
	requireSameSeries(t, nodeSeries(50), got.Timeseries)
}

// manyLabels returns __name__="up" and n-1 labels l00.. = "v".
func manyLabels(n int) []string {
	nv := []string{"__name__", "up"}
	for i := range n - 1 {
		nv = append(nv, "l"+string(rune('0'+i/10))+string(rune('0'+i%10)), "v")
	}
	return nv
}

// thousandsOfLabels is a raw WriteRequest of one series with as many
// labels as fit in 60 KiB (about 4,400).
func thousandsOfLabels() []byte {
	var series []byte
	for i := 0; len(series) < 60<<10; i++ {
		name := []byte("l0000000")
		for j, n := 7, i; j > 0; j, n = j-1, n/10 {
			name[j] = byte('0' + n%10)
		}
		lbl := append([]byte{0x0a, byte(len(name))}, name...)
		lbl = append(lbl, 0x12, 0x01, 'v')
		series = append(series, 0x0a, byte(len(lbl)))
		series = append(series, lbl...)
	}
	out := []byte{0x0a}
	out = binary.AppendUvarint(out, uint64(len(series)))
	return append(out, series...)
}

func TestContentTypes(t *testing.T) {
	for _, tc := range []struct {
		ct          string
		wantErr, v2 bool
	}{
		{"", false, false},
		{"application/x-protobuf", false, false},
		{"Application/X-Protobuf", false, false},
		{"application/x-protobuf;proto=prometheus.WriteRequest", false, false},
		{`application/x-protobuf; proto="prometheus.WriteRequest"`, false, false},
		{"application/x-protobuf;charset=utf-8", false, false},
		{"application/x-protobuf;proto=io.prometheus.write.v2.Request", false, true},
		{`application/x-protobuf; charset=utf-8; PROTO="io.prometheus.write.v2.Request"`, false, true},
		{"application/x-protobuf;proto=io.prometheus.write.v3.Request", true, false},
		{"application/x-protobuf;proto=", true, false},
		{"application/octet-stream", true, false},
		{"text/plain", true, false},
	} {
		t.Run(tc.ct, func(t *testing.T) {
			v2, err := checkContentType(tc.ct)
			require.Equal(t, tc.wantErr, err != nil, "%v", err)
			require.Equal(t, tc.v2, v2)
		})
	}
}

func TestReadBodyReusesBuffers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	body := encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(100)})
	for range 3 {
		code, msg := h.do(t, httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(body)))
		require.Equal(t, 204, code, msg)
	}
	require.Equal(t, 3, h.ings[0].pushCount())
}

// TestPushLyingSnappyHeaderAllocatesNothing: a body whose snappy header
// claims far more than it can expand to is refused before anything of the
// claimed size is allocated (150 such 6-byte bodies once cost 5.2 GB).
func TestPushLyingSnappyHeaderAllocatesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	body := append(binary.AppendUvarint(nil, 31<<20), 0x00, 0x01, 0x02)
	code, msg := h.push(t, body) // warm the pools
	require.Equal(t, http.StatusBadRequest, code, msg)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		code, _ = h.push(t, body)
		require.Equal(t, http.StatusBadRequest, code)
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "20 lying pushes allocated %d bytes", after.TotalAlloc-before.TotalAlloc)
}

// TestPushInflightBytesBounded: while pushes hold
// -distributor.max-inflight-push-bytes, another gets 429 naming the limit
// (and is counted); once they are answered it goes through. One push alone
// always goes, whatever its size.
func TestPushInflightBytesBounded(t *testing.T) {
	cfg := defaultConfig()
	body := encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(50)})
	raw, err := snappy.Decode(nil, body)
	require.NoError(t, err)
	cfg.MaxInflightPushBytes = int64(len(body)+len(raw)) + 1 // one push fits, two do not (one alone always goes)
	h := newHarness(t, harnessOpts{cfg: &cfg})
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // a failed check must not leave the held push hanging
	entered := make(chan struct{}, 1)
	h.ings[0].reply = func(ctx context.Context) error {
		entered <- struct{}{}
		<-release
		return nil
	}
	held := make(chan int)
	go func() {
		code, _ := h.push(t, body)
		held <- code
	}()
	<-entered
	// The held push counts its body, decompressed body and decoded request.
	one := int(testutil.ToFloat64(h.d.m.inflightPushBytes))
	require.Greater(t, one, len(body)+len(raw))

	code, msg := h.push(t, body)
	require.Equal(t, http.StatusTooManyRequests, code)
	// Refused on its announced length, before its body is read.
	require.Equal(t, fmt.Sprintf("this distributor holds %d bytes of other pushes in flight; this one's %d bytes would pass the limit of %d (-distributor.max-inflight-push-bytes): retry later [strata-max-inflight-push-bytes]", one, len(body), cfg.MaxInflightPushBytes), msg)
	require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues("anonymous", limitedInflightBytes)))

	// A body of unknown length (chunked) is counted as it arrives: refused
	// at its first read window, not after it has been read whole.
	chunked := newPushRequest(body)
	chunked.ContentLength = -1
	counted := &countingReader{r: chunked.Body}
	chunked.Body = io.NopCloser(counted)
	code, msg = h.do(t, chunked)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Less(t, counted.n, len(body), "refused before it was read whole")
	require.Contains(t, msg, "[strata-max-inflight-push-bytes]")
	require.Equal(t, 2.0, testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues("anonymous", limitedInflightBytes)))
	require.Equal(t, float64(one), testutil.ToFloat64(h.d.m.inflightPushBytes), "the refused chunked push gave back what it reserved")

	unblock()
	require.Equal(t, http.StatusNoContent, <-held)
	require.Zero(t, testutil.ToFloat64(h.d.m.inflightPushBytes))
	chunked = newPushRequest(body)
	chunked.ContentLength = -1
	code, msg = h.do(t, chunked)
	require.Equal(t, http.StatusNoContent, code, msg)
	require.Zero(t, testutil.ToFloat64(h.d.m.inflightPushBytes))
	h.ings[0].reply = nil
	code, msg = h.push(t, body)
	require.Equal(t, http.StatusNoContent, code, msg)

	// One push larger than the whole bound still goes when it is alone.
	cfg.MaxInflightPushBytes = 1
	h = newHarness(t, harnessOpts{cfg: &cfg})
	code, msg = h.push(t, body)
	require.Equal(t, http.StatusNoContent, code, msg)
}

// TestPushTrickledBody: a body that does not arrive within the server's
// read deadline gets 408 saying so, not a 400 blaming its content.
func TestPushTrickledBody(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	srv := httptest.NewUnstartedServer(h.d.PushHandler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	body := encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(20)})
	_, err = fmt.Fprintf(conn, "POST /api/v1/push HTTP/1.1\r\nHost: strata\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: %d\r\n\r\n", len(body))
	require.NoError(t, err)
	_, err = conn.Write(body[:len(body)/2]) // and the rest never comes
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(msg))
	require.Contains(t, string(msg), "before the read deadline (-server.http-read-timeout) passed")
	require.Zero(t, h.ings[0].pushCount())
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestPushChunkedSlowSenderHoldsLittle: a chunked push whose sender stalls
// holds at most one small read window of -distributor.max-inflight-push-bytes
// while its read blocks, even when the pooled buffer it reads into is large.
func TestPushChunkedSlowSenderHoldsLittle(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	// A large push first, so that the pool holds a large buffer.
	big := encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(20000)})
	require.Greater(t, len(big), 4*chunkedReadWindow)
	code, msg := h.push(t, big)
	require.Equal(t, http.StatusNoContent, code, msg)

	body := encode(t, &prompb.WriteRequest{Timeseries: nodeSeries(50)})
	pr, pw := io.Pipe()
	req := newPushRequest(nil)
	req.Body, req.ContentLength = pr, -1
	done := make(chan int)
	go func() {
		code, _ := h.do(t, req)
		done <- code
	}()
	_, err := pw.Write(body[:10]) // returns once the handler has read it
	require.NoError(t, err)
	// The handler has counted the 10 bytes it read and, at most, the
	// window of the read that now waits for the rest.
	require.LessOrEqual(t, testutil.ToFloat64(h.d.m.inflightPushBytes), float64(10+chunkedReadWindow))
	_, err = pw.Write(body[10:])
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	require.Equal(t, http.StatusNoContent, <-done)
	require.Zero(t, testutil.ToFloat64(h.d.m.inflightPushBytes))
}
