package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/tenant"
)

// client is the one HTTP client of the e2e tests. It talks to one process
// (a strata node or a Prometheus) at base: the Prometheus HTTP API,
// remote write and read, Strata's operator endpoints and ring pages, and
// /metrics. Every request carries one X-Scope-OrgID header per orgIDs
// (none: no header), so a test can send no tenant, one, or several.
//
// Methods that decode an answer want a 200 and return a *statusError
// otherwise; do, post, send and raw return whatever status came, for the
// tests that check error answers.
type client struct {
	base   string // scheme and host: http://127.0.0.1:9009
	orgIDs []string
	hc     *http.Client
}

func newClient(base string, orgIDs ...string) *client {
	return &client{base: base, orgIDs: orgIDs, hc: &http.Client{Timeout: 2 * time.Minute}}
}

// withTimeout returns a copy of c whose every request ends after d, for
// callers that retry a request that hangs.
func (c *client) withTimeout(d time.Duration) *client {
	return &client{base: c.base, orgIDs: c.orgIDs, hc: &http.Client{Timeout: d}}
}

// answer is the status and body of one answer, whatever the status.
type answer struct {
	Status int
	Body   []byte
}

func (a answer) text() string { return string(a.Body) }

// statusError is an answer other than the 200 a caller wanted.
type statusError struct {
	what string // method, path and query
	answer
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: status %d: %s", e.what, e.Status, truncate(e.text(), 500))
}

// do sends one request to path (which may carry its own query string).
// Without a body, a POST carries params form-encoded, other methods in the
// URL; with one, params go in the URL. hdr sets headers after the
// defaults; "" deletes one.
func (c *client) do(ctx context.Context, method, path string, params url.Values, hdr map[string]string, body []byte) (answer, error) {
	target := c.base + path
	var rd io.Reader
	form := body == nil && method == http.MethodPost
	switch {
	case form:
		rd = strings.NewReader(params.Encode())
	case body != nil:
		rd = bytes.NewReader(body)
	}
	if !form && len(params) > 0 {
		target += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return answer{}, err
	}
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, id := range c.orgIDs {
		req.Header.Add(tenant.Header, id)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s: %w", describe(method, path, params), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return answer{}, fmt.Errorf("read answer of %s: %w", describe(method, path, params), err)
	}
	return answer{Status: resp.StatusCode, Body: b}, nil
}

// describe names a request in errors: method, path and its PromQL query.
func describe(method, path string, params url.Values) string {
	if q := params.Get("query"); q != "" {
		return method + " " + path + " " + q
	}
	return method + " " + path
}

// ok is do for an answer that must be 200.
func (c *client) ok(ctx context.Context, method, path string, params url.Values, hdr map[string]string) ([]byte, error) {
	a, err := c.do(ctx, method, path, params, hdr, nil)
	if err != nil {
		return nil, err
	}
	if a.Status != http.StatusOK {
		return nil, &statusError{what: describe(method, path, params), answer: a}
	}
	return a.Body, nil
}

// post sends an empty POST, as to the operator endpoints /ingester/flush
// and /compactor/run.
func (c *client) post(ctx context.Context, path string) (answer, error) {
	return c.do(ctx, http.MethodPost, path, nil, nil, nil)
}

// queryParams are the form of an instant query at at.
func queryParams(q string, at time.Time) url.Values {
	return url.Values{"query": {q}, "time": {formatTime(at)}}
}

// query runs an instant query at at (POSTed as a form).
func (c *client) query(ctx context.Context, q string, at time.Time) (apiResult, error) {
	return c.result(ctx, "/api/v1/query", queryParams(q, at))
}

// queryRange runs a range query (POSTed as a form).
func (c *client) queryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) (apiResult, error) {
	return c.result(ctx, "/api/v1/query_range", url.Values{
		"query": {q}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

func (c *client) result(ctx context.Context, path string, params url.Values) (apiResult, error) {
	b, err := c.ok(ctx, http.MethodPost, path, params, nil)
	if err != nil {
		return apiResult{}, err
	}
	r, err := decodeAPIResult(b)
	if err != nil {
		return apiResult{}, fmt.Errorf("%s: %w", describe(http.MethodPost, path, params), err)
	}
	return r, nil
}

// strings returns the data of an answer whose data is a list of strings
// (/labels, /label/<name>/values) or of label sets (/series, as their
// String()), sorted. /label/<name>/values is sent by GET (Prometheus serves
// it only so), the others POSTed as a form.
func (c *client) strings(ctx context.Context, path string, params url.Values) ([]string, error) {
	method := http.MethodPost
	if strings.HasPrefix(path, "/api/v1/label/") {
		method = http.MethodGet
	}
	b, err := c.ok(ctx, method, path, params, nil)
	if err != nil {
		return nil, err
	}
	var data json.RawMessage
	if err := decodeData(b, &data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []string
	if err := json.Unmarshal(data, &out); err != nil {
		out = nil // Unmarshal fills what it could before the error
		var sets []map[string]string
		if err2 := json.Unmarshal(data, &sets); err2 != nil {
			return nil, fmt.Errorf("decode data of %s: %w", path, err)
		}
		for _, s := range sets {
			out = append(out, labels.FromMap(s).String())
		}
	}
	sort.Strings(out)
	return out, nil
}

// push sends body, an encoded remote-write request, to /api/v1/push.
func (c *client) push(ctx context.Context, body []byte) (answer, error) {
	return c.send(ctx, http.MethodPost, "/api/v1/push", body, nil)
}

// send sends body (already encoded as it should go on the wire) to path
// with remote-write 1.0 headers; hdr overrides or adds headers ("" deletes
// one).
func (c *client) send(ctx context.Context, method, path string, body []byte, hdr map[string]string) (answer, error) {
	h := map[string]string{
		"Content-Type":                      "application/x-protobuf",
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	}
	for k, v := range hdr {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if body == nil {
		body = []byte{} // a body, so do does not send a form
	}
	return c.do(ctx, method, path, nil, h, body)
}

// remoteRead fetches every sample of series matching ms in [start, end] from
// /api/v1/read as raw samples. Unlike the query API it returns staleness
// markers, which the PromQL comparison needs.
func (c *client) remoteRead(ctx context.Context, start, end int64, ms ...*prompb.LabelMatcher) ([]prompb.TimeSeries, error) {
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: start, EndTimestampMs: end, Matchers: ms}}}
	b, err := rr.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal read request: %w", err)
	}
	a, err := c.do(ctx, http.MethodPost, "/api/v1/read", nil, map[string]string{
		"Content-Type":                     "application/x-protobuf",
		"Content-Encoding":                 "snappy",
		"X-Prometheus-Remote-Read-Version": "0.1.0",
	}, snappy.Encode(nil, b))
	if err != nil {
		return nil, fmt.Errorf("remote read: %w", err)
	}
	if a.Status != http.StatusOK {
		return nil, &statusError{what: "remote read", answer: a}
	}
	raw, err := snappy.Decode(nil, a.Body)
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

// ring reads a ring status page (/ring, /store-gateway/ring) as JSON.
func (c *client) ring(ctx context.Context, path string) (procs.RingStatus, error) {
	var r procs.RingStatus
	// The rings are operator pages: with multi-tenancy, the operator's.
	b, err := c.ok(ctx, http.MethodGet, path, nil, map[string]string{"Accept": "application/json", "X-Scope-OrgID": procs.OperatorTenant})
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode %s: %w (body %.200s)", path, err, b)
	}
	return r, nil
}

var metricLabelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metric scrapes /metrics (the text exposition) and sums the samples of
// metric name whose labels include match. A metric that is absent sums to 0.
func (c *client) metric(ctx context.Context, name string, match map[string]string) (float64, error) {
	b, err := c.ok(ctx, http.MethodGet, "/metrics", nil, map[string]string{"Accept": "text/plain"})
	if err != nil {
		return 0, fmt.Errorf("scrape: %w", err)
	}
	url := c.base + "/metrics"
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || line[:end] != name {
			continue
		}
		rest := line[end:]
		got := map[string]string{}
		if rest[0] == '{' {
			closeAt := strings.LastIndexByte(rest, '}')
			if closeAt < 0 {
				return 0, fmt.Errorf("scrape %s: bad line %q", url, line)
			}
			for _, m := range metricLabelRE.FindAllStringSubmatch(rest[1:closeAt], -1) {
				val, err := strconv.Unquote(`"` + m[2] + `"`)
				if err != nil {
					return 0, fmt.Errorf("scrape %s: label in %q: %w", url, line, err)
				}
				got[m[1]] = val
			}
			rest = rest[closeAt+1:]
		}
		ok := true
		for k, want := range match {
			if got[k] != want {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("scrape %s: no value in %q", url, line)
		}
		f, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("scrape %s: value in %q: %w", url, line, err)
		}
		if !math.IsNaN(f) {
			sum += f
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("scrape %s: %w", url, err)
	}
	return sum, nil
}

// raw sends one HTTP/1.1 request over a fresh TCP connection with exactly
// one X-Scope-OrgID header, orgID written byte for byte: Go's client
// refuses header values with control characters, which a hostile client
// can send anyway. target is the request-target (path and encoded query);
// c's orgIDs are not sent.
func (c *client) raw(ctx context.Context, method, target, orgID string, hdr map[string]string, body []byte) (answer, error) {
	addr := strings.TrimPrefix(c.base, "http://")
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return answer{}, err
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return answer{}, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, addr)
	b.WriteString(tenant.Header + ": " + orgID + "\r\n")
	for k, v := range hdr {
		b.WriteString(k + ": " + v + "\r\n")
	}
	if body != nil {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		return answer{}, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return answer{}, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return answer{Status: resp.StatusCode, Body: out}, err
}
