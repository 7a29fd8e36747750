package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
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

// formatTime formats t as the API's decimal seconds.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
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

// decodeData decodes the data of a successful answer into data.
func decodeData(body []byte, data any) error {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("decode answer: %w (%s)", err, truncate(string(body), 300))
	}
	if env.Status != "success" {
		return fmt.Errorf("status %q: %s", env.Status, truncate(string(body), 300))
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("decode data: %w (%s)", err, truncate(string(body), 300))
	}
	return nil
}

// errorText is the "error" of a Prometheus error answer, or the plain body.
func errorText(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(body)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// diffResult compares two query answers, values bit for bit.
func diffResult(want, got apiResult) string {
	if want.Type != got.Type || len(want.Series) != len(got.Series) {
		return fmt.Sprintf("want %s of %d series, got %s of %d", want.Type, len(want.Series), got.Type, len(got.Series))
	}
	for i := range want.Series {
		w, g := want.Series[i], got.Series[i]
		if !labels.Equal(w.Labels, g.Labels) {
			return fmt.Sprintf("series %d: want %s, got %s", i, w.Labels, g.Labels)
		}
		if len(w.Points) != len(g.Points) {
			return fmt.Sprintf("%s: want %d points, got %d", w.Labels, len(w.Points), len(g.Points))
		}
		for j := range w.Points {
			if w.Points[j].T != g.Points[j].T || !sameBits(w.Points[j].V, g.Points[j].V) {
				return fmt.Sprintf("%s point %d: want %v, got %v", w.Labels, j, w.Points[j], g.Points[j])
			}
		}
	}
	return ""
}

// sameBits reports whether a and b are the same float64, bit for bit; any
// two NaNs count as equal because the JSON API does not carry NaN payloads.
func sameBits(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// encodeWrite marshals and snappy-compresses a remote-write 1.0 request.
func encodeWrite(wr *prompb.WriteRequest) []byte {
	b, err := wr.Marshal()
	if err != nil {
		panic(fmt.Sprintf("BUG: marshal write request: %v", err))
	}
	return snappy.Encode(nil, b)
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
