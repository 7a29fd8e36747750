package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// badInputCase is one request of the bad-input table.
type badInputCase struct {
	name    string
	method  string            // default POST
	path    string            // default /api/v1/push
	headers map[string]string // added to the remote-write headers; "" deletes one
	body    []byte
	status  int      // exact status code
	msgs    []string // substrings the answer must hold (case-insensitive): the series and the rule
	// stored, when set, is a selector whose samples at good must be exactly
	// wantStored after the request (good series are kept, valid odd values
	// such as NaN stored as sent).
	stored     string
	wantStored []float64
	wantLabels string // when set, the stored series' labels exactly, as labels.Labels.String()
	// notStored, when set, is a selector that must match nothing after
	// the request: a refused request stores none of its series.
	notStored string
}

// series1 builds a one-sample series; labels alternate name, value.
func series1(ts int64, v float64, nameValues ...string) prompb.TimeSeries {
	s := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ts, Value: v}}}
	for i := 0; i+1 < len(nameValues); i += 2 {
		s.Labels = append(s.Labels, prompb.Label{Name: nameValues[i], Value: nameValues[i+1]})
	}
	return s
}

// badRefV2 is a 2.0 body whose second series references a symbol that
// does not exist; its first, good series must not be stored either.
func badRefV2(ts int64) []byte {
	req := writev2.Request{Symbols: []string{"", "__name__", "e2e_rw2_badref_good", "e2e_rw2_badref"}, Timeseries: []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Value: 1, Timestamp: ts}}},
		{LabelsRefs: []uint32{1, 3, 99, 3}, Samples: []writev2.Sample{{Value: 1, Timestamp: ts}}},
	}}
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

func mustSnappyDecode(b []byte) []byte {
	out, err := snappy.Decode(nil, b)
	if err != nil {
		panic(err)
	}
	return out
}

func write(ss ...prompb.TimeSeries) []byte {
	return encodeWrite(&prompb.WriteRequest{Timeseries: ss})
}

// snappyOf compresses raw bytes as a push body.
func snappyOf(b []byte) []byte { return snappy.Encode(nil, b) }

// TestBadInput sends a table of malformed and abusive requests to a running
// strata, checks each answer's status and message, and afterwards that the
// data stored before is intact and the process still serves.
//
// Status codes as the distributor implements them (DESIGN.md: never-retry
// input gets a 4xx other than 429; remote-write senders drop on any such
// 4xx): 400 for bad content, 413 for a body over -distributor.max-recv-msg-size
// (compressed or not), 415 for a Content-Encoding or Content-Type it does not
// take (as Prometheus' own receiver), 405 for a method other than POST, 404
// for an unknown path. NaN and ±Inf are valid sample values and are stored.
func TestBadInput(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := newClient(s.URL).withTimeout(30 * time.Second)

	now := time.Now().Truncate(time.Second)
	good := now.Add(-time.Minute).UnixMilli() // timestamp of accepted samples
	// Data stored before the table, checked intact after it.
	var before []prompb.TimeSeries
	for i := range 10 {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "e2e_before"}, {Name: "i", Value: strconv.Itoa(i)}}}
		for k := range 20 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: good - int64(20-k)*1000, Value: float64(i*100 + k)})
		}
		before = append(before, ts)
	}
	res, err := api.push(ctx, write(before...))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent/100, res.Status/100, "seed push: %d %s", res.Status, res.Body)
	checkBefore := func(t *testing.T) {
		t.Helper()
		r, err := api.query(ctx, `e2e_before[1m]`, time.UnixMilli(good))
		require.NoError(t, err)
		require.Len(t, r.Series, len(before))
		for _, se := range r.Series {
			i, err := strconv.Atoi(se.Labels.Get("i"))
			require.NoError(t, err)
			require.Len(t, se.Points, 20, "series %s", se.Labels)
			for k, p := range se.Points {
				require.Equal(t, before[i].Samples[k].Timestamp, p.T)
				require.Equal(t, before[i].Samples[k].Value, p.V)
			}
		}
	}
	checkBefore(t)

	valid := write(series1(good, 1, "__name__", "e2e_valid"))
	manyLabels := []string{"__name__", "e2e_many_labels"}
	for i := range 40 {
		manyLabels = append(manyLabels, "l"+strconv.Itoa(100+i), "v")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mustMarshal(series1(good, 1, "__name__", "e2e_gzip")))
	zw.Close()
	random := make([]byte, 40<<20)
	rand.Read(random)
	// A 64 MiB body of zeros compresses to ~3 MiB: a decompression bomb.
	bomb := snappy.Encode(nil, make([]byte, 64<<20))
	truncated := mustMarshal(series1(good, 1, "__name__", "e2e_truncated", "job", "x"))
	truncated = truncated[:len(truncated)/2]

	for _, tc := range []badInputCase{
		{name: "garbage body", body: []byte("this is not snappy at all"), status: 400, msgs: []string{"snappy"}},
		{name: "bad snappy", body: []byte{0x0a, 0xff, 0xff, 0xff, 0x01, 0x02}, status: 400, msgs: []string{"snappy"}},
		{name: "truncated protobuf", body: snappyOf(truncated), status: 400, msgs: []string{"protobuf"}},
		{name: "not a protobuf", body: snappyOf(bytes.Repeat([]byte{0xff}, 64)), status: 400, msgs: []string{"protobuf"}},
		{name: "empty body", body: nil, status: 400, msgs: []string{"snappy"}},
		{name: "empty write request", body: snappyOf(nil), status: 204},
		{name: "body over the limit", body: random, status: 413, msgs: []string{"limit"}},
		{name: "decompression bomb", body: bomb, status: 413, msgs: []string{"limit"}},
		{name: "gzip content-encoding", headers: map[string]string{"Content-Encoding": "gzip"}, body: gz.Bytes(), status: 415, msgs: []string{"gzip"}},
		{name: "remote-write 2.0 content-type, 1.0 body", headers: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, body: valid, status: 400, msgs: []string{"reserved in remote-write 2.0", "strata-invalid-protobuf"}},
		{name: "unknown remote-write message", headers: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"}, body: valid, status: 415, msgs: []string{"io.prometheus.write.v3.Request", "strata-unsupported-content-type"}},
		{name: "rw2: good series stored, counts in headers", headers: rw2Headers, body: writeV2(good, nil, []string{"__name__", "e2e_rw2_good", "job", "a"}), status: 204, stored: `e2e_rw2_good`, wantStored: []float64{1}},
		{name: "rw2: truncated protobuf", headers: rw2Headers, body: snappyOf(mustSnappyDecode(writeV2(good, nil, []string{"__name__", "e2e_rw2_truncated"}))[:20]), status: 400, msgs: []string{"decode write request v2", "strata-invalid-protobuf"}},
		{name: "rw2: reference outside the symbols table", headers: rw2Headers, body: badRefV2(good), status: 400, msgs: []string{"e2e_rw2_badref", "symbols table", "strata-invalid-symbol-reference"}, notStored: "e2e_rw2_badref_good"},
		{name: "rw2: empty label name", headers: rw2Headers, body: writeV2(good, nil, []string{"__name__", "e2e_rw2_empty_label", "", "v"}), status: 400, msgs: []string{"e2e_rw2_empty_label", "invalid label name", "strata-invalid-label-name"}},
		{name: "rw2: empty metric name", headers: rw2Headers, body: writeV2(good, nil, []string{"__name__", "", "job", "e2e_rw2_no_name"}), status: 400, msgs: []string{"e2e_rw2_no_name", "no metric name"}},
		{name: "rw2: histogram count disagrees with its buckets", headers: rw2Headers, body: writeV2(good, &histogram.Histogram{Count: 3, Schema: 0, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{5}}, []string{"__name__", "e2e_rw2_bad_hist"}), status: 400, msgs: []string{"e2e_rw2_bad_hist", "strata-invalid-native-histogram"}},
		{name: "rw2: histogram buckets disagree with its spans", headers: rw2Headers, body: writeV2(good, &histogram.Histogram{Count: 3, Schema: 0, PositiveSpans: []histogram.Span{{Length: 2}}, PositiveBuckets: []int64{3}}, []string{"__name__", "e2e_rw2_bad_spans"}), status: 400, msgs: []string{"e2e_rw2_bad_spans", "spans cover 2 buckets", "strata-invalid-native-histogram"}},
		{name: "rw2: decompression bomb", headers: rw2Headers, body: bomb, status: 413, msgs: []string{"limit"}},
		{name: "rw2: gzip content-encoding", headers: map[string]string{"Content-Type": rw2Headers["Content-Type"], "Content-Encoding": "gzip"}, body: gz.Bytes(), status: 415, msgs: []string{"gzip"}},
		{name: "otlp: good gauge stored", path: "/otlp/v1/metrics", headers: otlpHeaders, body: otlpGauge("e2e.otlp.good", good, false), status: 200, stored: `e2e_otlp_good`, wantStored: []float64{1}},
		{name: "otlp: alias path, gzip", path: "/api/v1/otlp/v1/metrics", headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, body: gzipOf(otlpGauge("e2e.otlp.gzip", good, false)), status: 200, stored: `e2e_otlp_gzip`, wantStored: []float64{1}},
		{name: "otlp: wrong content type", path: "/otlp/v1/metrics", headers: map[string]string{"Content-Type": "text/plain", "Content-Encoding": ""}, body: otlpGauge("e2e.otlp.text", good, false), status: 415, msgs: []string{"text/plain", "strata-unsupported-content-type"}, notStored: "e2e_otlp_text"},
		{name: "otlp: snappy encoding", path: "/otlp/v1/metrics", headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}, body: snappyOf(otlpGauge("e2e.otlp.snappy", good, false)), status: 415, msgs: []string{"snappy", "strata-unsupported-content-encoding"}},
		{name: "otlp: truncated protobuf", path: "/otlp/v1/metrics", headers: otlpHeaders, body: otlpGauge("e2e.otlp.truncated", good, false)[:40], status: 400, msgs: []string{"decode OTLP protobuf body", "strata-invalid-otlp"}, notStored: "e2e_otlp_truncated"},
		{name: "otlp: delta only", path: "/otlp/v1/metrics", headers: otlpHeaders, body: otlpGauge("e2e.otlp.delta", good, true), status: 400, msgs: []string{"e2e.otlp.delta", "strata-otlp-delta-temporality"}, notStored: "e2e_otlp_delta_total"},
		{name: "otlp: gzip bomb", path: "/otlp/v1/metrics", headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, body: gzipOf(make([]byte, 64<<20)), status: 413, msgs: []string{"limit"}},
		{name: "otlp: zstd bomb", path: "/otlp/v1/metrics", headers: map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}, body: zstdOf(make([]byte, 64<<20)), status: 413, msgs: []string{"limit"}},
		{name: "otlp: body over the limit", path: "/otlp/v1/metrics", headers: otlpHeaders, body: random, status: 413, msgs: []string{"limit"}},
		{name: "json content-type", headers: map[string]string{"Content-Type": "application/json"}, body: valid, status: 415, msgs: []string{"application/json"}},
		{name: "invalid UTF-8 label value", body: write(series1(good, 1, "__name__", "e2e_bad_utf8", "path", "a\xff\xfeb")), status: 400, msgs: []string{"e2e_bad_utf8", "UTF-8", "path"}},
		{name: "invalid UTF-8 label name", body: write(series1(good, 1, "__name__", "e2e_bad_utf8_name", "p\xffth", "v")), status: 400, msgs: []string{"e2e_bad_utf8_name", "label name"}},
		{name: "duplicate label names", body: write(series1(good, 1, "__name__", "e2e_dup", "a", "1", "a", "2")), status: 400, msgs: []string{"e2e_dup", "duplicate label name", `"a"`}},
		{name: "too many labels", body: write(series1(good, 1, manyLabels...)), status: 400, msgs: []string{"e2e_many_labels", "41 labels", "limit 30"}},
		{name: "label name with invalid characters", body: write(series1(good, 1, "__name__", "e2e_bad_label", "1x-y", "v")), status: 400, msgs: []string{"e2e_bad_label", "invalid label name", "1x-y"}},
		{name: "invalid metric name", body: write(series1(good, 1, "__name__", "1e2e bad name")), status: 400, msgs: []string{"invalid metric name", "1e2e bad name"}},
		{name: "missing metric name", body: write(series1(good, 1, "job", "e2e_no_name")), status: 400, msgs: []string{"e2e_no_name", "no metric name"}},
		{name: "empty metric name", body: write(series1(good, 1, "__name__", "", "job", "e2e_empty_name")), status: 400, msgs: []string{"e2e_empty_name", "no metric name"}},
		{name: "empty label name", body: write(series1(good, 1, "__name__", "e2e_empty_label_name", "", "v")), status: 400, msgs: []string{"e2e_empty_label_name", "label name"}},
		{name: "label value too long", body: write(series1(good, 1, "__name__", "e2e_long_value", "v", strings.Repeat("x", 3000))), status: 400, msgs: []string{"e2e_long_value", "3000 bytes", "limit 2048"}},
		{name: "label name too long", body: write(series1(good, 1, "__name__", "e2e_long_name", strings.Repeat("n", 1100), "v")), status: 400, msgs: []string{"e2e_long_name", "1100 bytes", "limit 1024"}},
		{name: "timestamp far in the future", body: write(series1(now.Add(time.Hour).UnixMilli(), 1, "__name__", "e2e_future")), status: 400, msgs: []string{"e2e_future", "in the future", "limit 10m"}},
		{name: "timestamp in 1970", body: write(series1(1000, 1, "__name__", "e2e_1970")), status: 400, msgs: []string{"e2e_1970", "too old", "1970-01-01T00:00:01Z"}},
		{name: "out-of-order sample", body: write(series1(good-60_000, 1, "__name__", "e2e_before", "i", "3")), status: 400, msgs: []string{"e2e_before", `i="3"`, "out of order", "-ingester.out-of-order-time-window"}},
		{name: "duplicate timestamp, other value", body: write(series1(before[4].Samples[19].Timestamp, -1, "__name__", "e2e_before", "i", "4")), status: 400, msgs: []string{"e2e_before", `i="4"`, "duplicate sample"}},
		{name: "good and bad series together", body: write(series1(good, 7, "__name__", "e2e_mixed_good"), series1(good, 1, "__name__", "e2e_mixed_bad", "a", "1", "a", "2")), status: 400, msgs: []string{"e2e_mixed_bad", "duplicate label name"}, stored: `e2e_mixed_good`, wantStored: []float64{7}},
		{name: "NaN value is stored", body: write(series1(good, math.NaN(), "__name__", "e2e_nan")), status: 204, stored: `e2e_nan`, wantStored: []float64{math.NaN()}},
		{name: "+Inf value is stored", body: write(series1(good, math.Inf(1), "__name__", "e2e_inf", "sign", "+")), status: 204, stored: `e2e_inf{sign="+"}`, wantStored: []float64{math.Inf(1)}},
		{name: "-Inf value is stored", body: write(series1(good, math.Inf(-1), "__name__", "e2e_inf", "sign", "-")), status: 204, stored: `e2e_inf{sign="-"}`, wantStored: []float64{math.Inf(-1)}},
		{name: "unsorted labels are sorted", body: write(series1(good, 3, "__name__", "e2e_unsorted", "z", "1", "a", "2")), status: 204, stored: `e2e_unsorted{a="2",z="1"}`, wantStored: []float64{3}, wantLabels: `{__name__="e2e_unsorted", a="2", z="1"}`},
		{name: "empty label value is dropped", body: write(series1(good, 4, "__name__", "e2e_empty_value", "gone", "", "kept", "k")), status: 204, stored: `e2e_empty_value`, wantStored: []float64{4}, wantLabels: `{__name__="e2e_empty_value", kept="k"}`},
		{name: "alias /api/v1/write", path: "/api/v1/write", body: write(series1(good, 5, "__name__", "e2e_alias")), status: 204, stored: `e2e_alias`, wantStored: []float64{5}},
		{name: "GET on the push path", method: http.MethodGet, body: nil, status: 405, msgs: []string{"POST"}},
		{name: "PUT on the push path", method: http.MethodPut, body: valid, status: 405, msgs: []string{"POST"}},
		{name: "unknown path", path: "/api/v1/pushh", body: valid, status: 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/api/v1/push"
			}
			res, err := api.send(ctx, method, path, tc.body, tc.headers)
			require.NoError(t, err)
			require.Equal(t, tc.status, res.Status, "answer: %s", res.Body)
			for _, m := range tc.msgs {
				require.Contains(t, strings.ToLower(res.text()), strings.ToLower(m), "the answer should name %q", m)
			}
			t.Logf("%d %s", res.Status, truncate(strings.TrimSpace(res.text()), 300))
			if tc.notStored != "" {
				r, err := api.query(ctx, tc.notStored+`[1m]`, time.UnixMilli(good))
				require.NoError(t, err)
				require.Empty(t, r.Series, "%s was stored from a refused request", tc.notStored)
			}
			if tc.stored != "" {
				r, err := api.query(ctx, tc.stored+`[1s]`, time.UnixMilli(good))
				require.NoError(t, err)
				require.Len(t, r.Series, 1, "%s stored once", tc.stored)
				if tc.wantLabels != "" {
					require.Equal(t, tc.wantLabels, r.Series[0].Labels.String())
				}
				var got []float64
				for _, p := range r.Series[0].Points {
					require.Equal(t, good, p.T)
					got = append(got, p.V)
				}
				require.Len(t, got, len(tc.wantStored))
				for i := range got {
					require.True(t, sameBits(tc.wantStored[i], got[i]), "stored %v, want %v", got[i], tc.wantStored[i])
				}
			}
		})
	}

	// The process still serves and the data stored before is intact.
	procs.WaitHTTPT(t, s.Process(), s.URL+"/ready", 10*time.Second)
	require.False(t, s.Process().Exited())
	checkBefore(t)
	res, err = api.push(ctx, write(series1(now.UnixMilli(), 1, "__name__", "e2e_after")))
	require.NoError(t, err)
	require.Equal(t, 2, res.Status/100, "push after the table: %d %s", res.Status, res.Body)
}

func mustMarshal(s prompb.TimeSeries) []byte {
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{s}}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}
