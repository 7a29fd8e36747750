package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// point is one sample as the HTTP API returns it.
type point struct {
	T int64 // milliseconds
	V float64
}

// series is one result series: labels and points in time order.
type series struct {
	Labels labels.Labels
	Points []point
}

// apiResult is a decoded /api/v1/query or /api/v1/query_range answer. Vector
// and scalar answers become series with one point each (a scalar has no
// labels), so every result type compares the same way.
type apiResult struct {
	Type   string
	Series []series // sorted by labels
}

// apiClient talks to the Prometheus HTTP API of Strata or Prometheus.
type apiClient struct {
	base   string
	client *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, client: &http.Client{Timeout: time.Minute}}
}

// query runs an instant query at ts.
func (c *apiClient) query(ctx context.Context, q string, ts time.Time) (apiResult, error) {
	return c.get(ctx, "/api/v1/query", url.Values{"query": {q}, "time": {formatTime(ts)}})
}

// queryRange runs a range query.
func (c *apiClient) queryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) (apiResult, error) {
	return c.get(ctx, "/api/v1/query_range", url.Values{
		"query": {q}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

func (c *apiClient) get(ctx context.Context, path string, params url.Values) (apiResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(params.Encode()))
	if err != nil {
		return apiResult{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %w", path, params.Get("query"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResult{}, fmt.Errorf("read answer to %s: %w", params.Get("query"), err)
	}
	if resp.StatusCode != http.StatusOK {
		return apiResult{}, fmt.Errorf("%s %s: status %d: %s", path, params.Get("query"), resp.StatusCode, truncate(string(body), 500))
	}
	r, err := decodeAPIResult(body)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s %s: %w", path, params.Get("query"), err)
	}
	return r, nil
}

// decodeAPIResult decodes the JSON of a successful query answer. Values are
// parsed from their strings, which Prometheus writes with the shortest
// representation that round-trips, so the float64 bits are exact (NaN's
// payload aside: JSON says only "NaN").
func decodeAPIResult(body []byte) (apiResult, error) {
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&ans); err != nil {
		return apiResult{}, fmt.Errorf("decode answer: %w", err)
	}
	if ans.Status != "success" {
		return apiResult{}, fmt.Errorf("status %q: %s", ans.Status, truncate(string(body), 500))
	}
	r := apiResult{Type: ans.Data.ResultType}
	type jsonSeries struct {
		Metric map[string]string    `json:"metric"`
		Values [][2]json.RawMessage `json:"values"`
		Value  [2]json.RawMessage   `json:"value"`
	}
	switch r.Type {
	case "matrix", "vector":
		var ss []jsonSeries
		if err := json.Unmarshal(ans.Data.Result, &ss); err != nil {
			return apiResult{}, fmt.Errorf("decode %s: %w", r.Type, err)
		}
		for _, s := range ss {
			vals := s.Values
			if r.Type == "vector" {
				vals = [][2]json.RawMessage{s.Value}
			}
			out := series{Labels: labels.FromMap(s.Metric)}
			for _, v := range vals {
				p, err := parsePoint(v)
				if err != nil {
					return apiResult{}, err
				}
				out.Points = append(out.Points, p)
			}
			r.Series = append(r.Series, out)
		}
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(ans.Data.Result, &v); err != nil {
			return apiResult{}, fmt.Errorf("decode scalar: %w", err)
		}
		p, err := parsePoint(v)
		if err != nil {
			return apiResult{}, err
		}
		r.Series = []series{{Labels: labels.EmptyLabels(), Points: []point{p}}}
	default:
		return apiResult{}, fmt.Errorf("result type %q not handled", r.Type)
	}
	sortSeries(r.Series)
	return r, nil
}

// parsePoint parses [<unix seconds with up to 3 decimals>, "<value>"]. The
// timestamp is converted to milliseconds from its decimal digits, not via a
// float, so that it is exact; the value string ("NaN", "+Inf" included) is
// parsed by strconv.
func parsePoint(v [2]json.RawMessage) (point, error) {
	ts, err := parseMillis(string(v[0]))
	if err != nil {
		return point{}, err
	}
	var str string
	if err := json.Unmarshal(v[1], &str); err != nil {
		return point{}, fmt.Errorf("value %s is not a JSON string: %w", v[1], err)
	}
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return point{}, fmt.Errorf("parse value %q: %w", str, err)
	}
	return point{T: ts, V: f}, nil
}

func parseMillis(s string) (int64, error) {
	sec, frac, _ := strings.Cut(s, ".")
	if len(frac) > 3 || strings.ContainsAny(s, "eE") {
		return 0, fmt.Errorf("timestamp %q is not whole milliseconds", s)
	}
	frac += strings.Repeat("0", 3-len(frac))
	n, err := strconv.ParseInt(sec+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return n, nil
}

func sortSeries(ss []series) {
	sort.Slice(ss, func(i, j int) bool { return labels.Compare(ss[i].Labels, ss[j].Labels) < 0 })
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// sameBits reports whether a and b are the same float64, bit for bit; any
// two NaNs count as equal because the JSON API does not carry NaN payloads.
func sameBits(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// pushResult is the answer to one remote-write request.
type pushResult struct {
	Status int
	Body   string
}

// push sends body (already encoded as it should go on the wire) to url with
// remote-write 1.0 headers; hdr overrides or adds headers ("" deletes one).
func push(ctx context.Context, client *http.Client, method, url string, body []byte, hdr map[string]string) (pushResult, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return pushResult{}, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return pushResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return pushResult{}, err
	}
	return pushResult{Status: resp.StatusCode, Body: string(b)}, nil
}

// encodeWrite marshals and snappy-compresses a remote-write 1.0 request.
func encodeWrite(wr *prompb.WriteRequest) []byte {
	b, err := wr.Marshal()
	if err != nil {
		panic(fmt.Sprintf("BUG: marshal write request: %v", err))
	}
	return snappy.Encode(nil, b)
}

// remoteRead fetches every sample of series matching ms in [start, end] from
// Prometheus' /api/v1/read as raw samples. Unlike the query API it returns
// staleness markers, which the PromQL comparison needs.
func remoteRead(ctx context.Context, base string, start, end int64, ms ...*prompb.LabelMatcher) ([]prompb.TimeSeries, error) {
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: start, EndTimestampMs: end, Matchers: ms}}}
	b, err := rr.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal read request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remote read: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read remote-read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("remote read: status %d: %s", resp.StatusCode, truncate(string(body), 500))
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("decompress remote-read answer: %w", err)
	}
	var rresp prompb.ReadResponse
	if err := rresp.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("decode remote-read answer: %w", err)
	}
	if len(rresp.Results) != 1 {
		return nil, fmt.Errorf("remote read: %d results, want 1", len(rresp.Results))
	}
	var out []prompb.TimeSeries
	for _, ts := range rresp.Results[0].Timeseries {
		out = append(out, *ts)
	}
	return out, nil
}

// toLabels converts remote-write labels.
func toLabels(ls []prompb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	b.Sort()
	return b.Labels()
}
