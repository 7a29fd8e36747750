package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-metrics/strata/tenant"
)

// The isolation tests push two tenants whose every string (metric names,
// label names and values, help texts, exemplar labels) carries the
// tenant's marker, "alpha" or "bravo", and one metric name they share; a
// leak shows as the other tenant's marker anywhere in an answer.

const (
	isoSamples      = 10
	isoStep         = 15_000 // ms between two samples of a series
	isoSharedMetric = "iso_shared_metric"
)

// isoTenant is what one tenant pushed.
type isoTenant struct {
	id, marker string
	base       int64 // ms: timestamp of the first sample of every series
	series     []prompb.TimeSeries
	metadata   []prompb.MetricMetadata
	byKey      map[string]*prompb.TimeSeries // labels.Labels.String() → series
}

// newIsoTenant builds the data of tenant id: pods request counters, a
// temperature and the shared metric; exemplars on the first counter and
// on the shared metric; metadata for every family. Values start at offset.
func newIsoTenant(id, marker string, pods int, base int64, offset float64) *isoTenant {
	m := marker
	d := &isoTenant{id: id, marker: m, base: base, byKey: map[string]*prompb.TimeSeries{}}
	add := func(ex *prompb.Exemplar, nameValues ...string) {
		s := prompb.TimeSeries{Labels: isoLabels(nameValues...)}
		k := float64(len(d.series))
		for i := range isoSamples {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: base + int64(i)*isoStep, Value: offset + k*100 + float64(i)})
		}
		if ex != nil {
			s.Exemplars = []prompb.Exemplar{*ex}
		}
		d.series = append(d.series, s)
	}
	for p := range pods {
		var ex *prompb.Exemplar
		if p == 0 {
			ex = &prompb.Exemplar{Labels: isoLabels(m+"_trace_id", m+"-trace-1"), Value: 1, Timestamp: base + 2*isoStep}
		}
		add(ex, "__name__", "iso_"+m+"_requests_total", m+"_region", m+"-eu-1", m+"_pod", fmt.Sprintf("%s-pod-%d", m, p))
	}
	add(nil, "__name__", "iso_"+m+"_temperature", m+"_region", m+"-eu-1")
	add(&prompb.Exemplar{Labels: isoLabels("trace_id", m+"-trace-shared"), Value: 2, Timestamp: base + 3*isoStep},
		"__name__", isoSharedMetric, "owner", m+"-owner")
	for i := range d.series {
		d.byKey[toLabels(d.series[i].Labels).String()] = &d.series[i]
	}
	d.metadata = []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "iso_" + m + "_requests_total", Help: m + " requests served"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "iso_" + m + "_temperature", Help: m + " temperature", Unit: m + "celsius"},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: isoSharedMetric, Help: m + " help of the shared metric"},
	}
	return d
}

func isoLabels(nameValues ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i+1 < len(nameValues); i += 2 {
		out = append(out, prompb.Label{Name: nameValues[i], Value: nameValues[i+1]})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// body is the tenant's data as one snappy-compressed remote-write 1.0 request.
func (d *isoTenant) body() []byte {
	return encodeWrite(&prompb.WriteRequest{Timeseries: d.series, Metadata: d.metadata})
}

// last is the timestamp of the last sample of every series.
func (d *isoTenant) last() int64 { return d.base + (isoSamples-1)*isoStep }

func (d *isoTenant) keys() []string {
	out := make([]string, 0, len(d.byKey))
	for k := range d.byKey {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (d *isoTenant) metricNames() []string { return d.labelValues("__name__") }

func (d *isoTenant) labelNames() []string {
	set := map[string]bool{}
	for _, s := range d.series {
		for _, l := range s.Labels {
			set[l.Name] = true
		}
	}
	return sortedKeys(set)
}

func (d *isoTenant) labelValues(name string) []string {
	set := map[string]bool{}
	for _, s := range d.series {
		for _, l := range s.Labels {
			if l.Name == name {
				set[l.Value] = true
			}
		}
	}
	return sortedKeys(set)
}

// exemplarKeys are the labels of every exemplar of the series whose metric
// name matches keep, as labels.Labels.String().
func (d *isoTenant) exemplarKeys(keep func(metric string) bool) []string {
	var out []string
	for _, s := range d.series {
		if !keep(toLabels(s.Labels).Get("__name__")) {
			continue
		}
		for _, e := range s.Exemplars {
			out = append(out, toLabels(e.Labels).String())
		}
	}
	slices.Sort(out)
	return out
}

func (d *isoTenant) help(metric string) string {
	for _, m := range d.metadata {
		if m.MetricFamilyName == metric {
			return m.Help
		}
	}
	return ""
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// isoSecs formats ms as the API's decimal seconds.
func isoSecs(ms int64) string { return formatTime(time.UnixMilli(ms)) }

// isoProbe is one request of the read table, sent as one tenant.
type isoProbe struct {
	name   string
	method string // GET or POST (form-encoded)
	path   string
	params url.Values
	// check returns why the answer does not show exactly the tenant's own
	// data (yet), nil once it does. Replicas that have not applied a push
	// yet are allowed to lag: checks are polled.
	check func(body []byte) error
}

// isoProbes is the read table as own, with other the tenant that must stay
// invisible: every tenant-scoped route of querier/api.go, with the
// parameters Grafana sends.
func isoProbes(own, other *isoTenant) []isoProbe {
	from, to := isoSecs(own.base), isoSecs(own.last())
	all := `{__name__=~".+"}`
	otherMetric := "iso_" + other.marker + "_requests_total"
	isShared := func(m string) bool { return m == isoSharedMetric }
	anyMetric := func(string) bool { return true }
	v := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	return []isoProbe{
		{"query every series", http.MethodGet, "/api/v1/query", v("query", all, "time", to), own.checkInstant(own.keys())},
		{"query every series, POST", http.MethodPost, "/api/v1/query", v("query", all, "time", to), own.checkInstant(own.keys())},
		{"query the shared metric", http.MethodGet, "/api/v1/query", v("query", isoSharedMetric, "time", to), own.checkInstant(own.keysOf(isoSharedMetric))},
		{"query the other tenant's metric", http.MethodGet, "/api/v1/query", v("query", otherMetric, "time", to), own.checkInstant(nil)},
		{"query a count", http.MethodGet, "/api/v1/query", v("query", "count("+all+")", "time", to), checkCount(len(own.series))},
		{"query_range every series", http.MethodPost, "/api/v1/query_range", v("query", all, "start", from, "end", to, "step", "15"), own.checkRange()},
		{"series", http.MethodGet, "/api/v1/series", v("match[]", all, "start", from, "end", to), checkSeries(own.keys())},
		{"series, Grafana's fallback", http.MethodPost, "/api/v1/series", v("match[]", `{__name__!=""}`), checkSeries(own.keys())},
		{"series of the other tenant's metric", http.MethodGet, "/api/v1/series", v("match[]", otherMetric), checkSeries(nil)},
		{"labels", http.MethodGet, "/api/v1/labels", nil, checkStrings(own.labelNames())},
		{"labels in a window, POST", http.MethodPost, "/api/v1/labels", v("start", from, "end", to, "limit", "40000"), checkStrings(own.labelNames())},
		{"labels of the shared metric", http.MethodGet, "/api/v1/labels", v("match[]", isoSharedMetric), checkStrings([]string{"__name__", "owner"})},
		{"metric names", http.MethodGet, "/api/v1/label/__name__/values", v("start", from, "end", to), checkStrings(own.metricNames())},
		{"values of its own label", http.MethodGet, "/api/v1/label/" + own.marker + "_region/values", nil, checkStrings(own.labelValues(own.marker + "_region"))},
		{"values of the other tenant's label", http.MethodGet, "/api/v1/label/" + other.marker + "_region/values", nil, checkStrings(nil)},
		{"values of a shared label name", http.MethodGet, "/api/v1/label/owner/values", v("match[]", isoSharedMetric), checkStrings(own.labelValues("owner"))},
		{"metadata", http.MethodGet, "/api/v1/metadata", nil, own.checkMetadata(own.metricNames())},
		{"metadata of the shared metric", http.MethodGet, "/api/v1/metadata", v("metric", isoSharedMetric), own.checkMetadata([]string{isoSharedMetric})},
		{"metadata of the other tenant's metric", http.MethodGet, "/api/v1/metadata", v("metric", otherMetric), own.checkMetadata(nil)},
		{"exemplars", http.MethodGet, "/api/v1/query_exemplars", v("query", all, "start", from, "end", to), checkExemplars(own.exemplarKeys(anyMetric))},
		{"exemplars of the shared metric, POST", http.MethodPost, "/api/v1/query_exemplars", v("query", isoSharedMetric, "start", from, "end", to), checkExemplars(own.exemplarKeys(isShared))},
		{"exemplars of the other tenant's metric", http.MethodGet, "/api/v1/query_exemplars", v("query", otherMetric, "start", from, "end", to), checkExemplars(nil)},
		{"tsdb status", http.MethodGet, "/api/v1/status/tsdb", v("limit", "100"), own.checkTSDBStatus()},
		{"user stats", http.MethodGet, "/api/v1/user_stats", nil, checkUserStats(len(own.series))},
	}
}

// keysOf are the keys of the tenant's series of metric.
func (d *isoTenant) keysOf(metric string) []string {
	var out []string
	for _, k := range d.keys() {
		if toLabels(d.byKey[k].Labels).Get("__name__") == metric {
			out = append(out, k)
		}
	}
	return out
}

// checkInstant wants exactly the series keys, each with its last value.
func (d *isoTenant) checkInstant(keys []string) func([]byte) error {
	return func(body []byte) error {
		r, err := decodeAPIResult(body)
		if err != nil {
			return err
		}
		var got []string
		for _, s := range r.Series {
			k := s.Labels.String()
			got = append(got, k)
			want, ok := d.byKey[k]
			if !ok {
				return fmt.Errorf("series %s is not the tenant's", k)
			}
			last := want.Samples[len(want.Samples)-1]
			if len(s.Points) != 1 || s.Points[0].V != last.Value {
				return fmt.Errorf("series %s: points %v, want value %v", k, s.Points, last.Value)
			}
		}
		return equalStrings("series", keys, got)
	}
}

// checkRange wants every series with every sample exactly (step = the
// samples' interval, start = the first sample).
func (d *isoTenant) checkRange() func([]byte) error {
	return func(body []byte) error {
		r, err := decodeAPIResult(body)
		if err != nil {
			return err
		}
		var got []string
		for _, s := range r.Series {
			k := s.Labels.String()
			got = append(got, k)
			want, ok := d.byKey[k]
			if !ok {
				return fmt.Errorf("series %s is not the tenant's", k)
			}
			if err := samePoints(want.Samples, s.Points); err != nil {
				return fmt.Errorf("series %s: %w", k, err)
			}
		}
		return equalStrings("series", d.keys(), got)
	}
}

func samePoints(want []prompb.Sample, got []point) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d points, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].T != want[i].Timestamp || !sameBits(got[i].V, want[i].Value) {
			return fmt.Errorf("point %d is %v, want {%d %v}", i, got[i], want[i].Timestamp, want[i].Value)
		}
	}
	return nil
}

func checkCount(n int) func([]byte) error {
	return func(body []byte) error {
		r, err := decodeAPIResult(body)
		if err != nil {
			return err
		}
		if len(r.Series) != 1 || len(r.Series[0].Points) != 1 || r.Series[0].Points[0].V != float64(n) {
			return fmt.Errorf("count is %v, want %d", r.Series, n)
		}
		return nil
	}
}

func checkSeries(keys []string) func([]byte) error {
	return func(body []byte) error {
		var data []map[string]string
		if err := decodeData(body, &data); err != nil {
			return err
		}
		var got []string
		for _, m := range data {
			got = append(got, labels.FromMap(m).String())
		}
		slices.Sort(got)
		return equalStrings("series", keys, got)
	}
}

func checkStrings(want []string) func([]byte) error {
	return func(body []byte) error {
		var got []string
		if err := decodeData(body, &got); err != nil {
			return err
		}
		return equalStrings("data", want, got)
	}
}

func (d *isoTenant) checkMetadata(metrics []string) func([]byte) error {
	return func(body []byte) error {
		var data map[string][]struct{ Type, Help, Unit string }
		if err := decodeData(body, &data); err != nil {
			return err
		}
		got := make([]string, 0, len(data))
		for name, entries := range data {
			got = append(got, name)
			if len(entries) != 1 || entries[0].Help != d.help(name) {
				return fmt.Errorf("metadata of %s is %+v, want one entry with help %q", name, entries, d.help(name))
			}
		}
		slices.Sort(got)
		return equalStrings("metric families", metrics, got)
	}
}

func checkExemplars(want []string) func([]byte) error {
	return func(body []byte) error {
		var data []struct {
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
			} `json:"exemplars"`
		}
		if err := decodeData(body, &data); err != nil {
			return err
		}
		var got []string
		for _, s := range data {
			for _, e := range s.Exemplars {
				got = append(got, labels.FromMap(e.Labels).String())
			}
		}
		slices.Sort(got)
		return equalStrings("exemplars", want, got)
	}
}

func (d *isoTenant) checkTSDBStatus() func([]byte) error {
	return func(body []byte) error {
		var data struct {
			HeadStats struct {
				NumSeries uint64 `json:"numSeries"`
			} `json:"headStats"`
			SeriesCountByMetricName    []struct{ Name string } `json:"seriesCountByMetricName"`
			LabelValueCountByLabelName []struct{ Name string } `json:"labelValueCountByLabelName"`
		}
		if err := decodeData(body, &data); err != nil {
			return err
		}
		if data.HeadStats.NumSeries != uint64(len(d.series)) {
			return fmt.Errorf("headStats.numSeries %d, want %d", data.HeadStats.NumSeries, len(d.series))
		}
		names := func(ss []struct{ Name string }) []string {
			var out []string
			for _, s := range ss {
				out = append(out, s.Name)
			}
			slices.Sort(out)
			return out
		}
		if err := equalStrings("seriesCountByMetricName", d.metricNames(), names(data.SeriesCountByMetricName)); err != nil {
			return err
		}
		return equalStrings("labelValueCountByLabelName", d.labelNames(), names(data.LabelValueCountByLabelName))
	}
}

func checkUserStats(n int) func([]byte) error {
	return func(body []byte) error {
		var s struct {
			NumSeries uint64 `json:"numSeries"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return fmt.Errorf("decode user stats: %w (%s)", err, truncate(string(body), 300))
		}
		if s.NumSeries != uint64(n) {
			return fmt.Errorf("numSeries %d, want %d", s.NumSeries, n)
		}
		return nil
	}
}

func equalStrings(what string, want, got []string) error {
	if len(want) == 0 && len(got) == 0 {
		return nil
	}
	if !slices.Equal(want, got) {
		return fmt.Errorf("%s %q, want %q", what, got, want)
	}
	return nil
}

// hostileID is one tenant id a client may send to break out of its tenant.
type hostileID struct {
	name, id string
	// reason is what the 400 must say after "invalid tenant id"; empty
	// where Go's HTTP server rejects the header itself (control
	// characters), before any handler sees it.
	reason string
	// httpOnly: not valid UTF-8, so no gRPC client can send it (proto3
	// strings must be UTF-8).
	httpOnly bool
}

const (
	reasonChar = "is not allowed (letters, digits"
	reasonDots = `"." and ".." are not allowed`
	isoTenantA = "tenant-alpha"
	isoTenantB = "tenant-bravo"
)

// validLong150 is a valid tenant id of exactly tenant.MaxIDLength bytes: it
// must be accepted everywhere.
var validLong150 = strings.Repeat("v", tenant.MaxIDLength-10) + "-150-bytes"

// hostileIDs is the table of tenant ids that must be rejected with 400
// everywhere, and must never name a file or directory.
func hostileIDs() []hostileID {
	long := strings.Repeat("h", tenant.MaxIDLength+1)
	return []hostileID{
		{name: "parent then x", id: "../x", reason: reasonChar},
		{name: "dot dot", id: "..", reason: reasonDots},
		{name: "dot", id: ".", reason: reasonDots},
		{name: "slash", id: "a/b", reason: reasonChar},
		{name: "backslash", id: `a\b`, reason: reasonChar},
		{name: "absolute path", id: "/tmp", reason: reasonChar},
		{name: "up to tenant A's tsdb", id: "../tsdb/" + isoTenantA, reason: reasonChar},
		{name: "tenant B then up to tenant A", id: isoTenantB + "/../" + isoTenantA, reason: reasonChar},
		{name: "dot slash tenant A", id: "./" + isoTenantA, reason: reasonChar},
		{name: "151 bytes", id: long, reason: "151 bytes long, limit 150"},
		{name: "fullwidth solidus", id: "a\uff0fb", reason: reasonChar},
		{name: "division slash", id: "a\u2215b", reason: reasonChar},
		{name: "fullwidth dots", id: "\uff0e\uff0e", reason: reasonChar},
		{name: "one dot leader pair", id: "\u2024\u2024", reason: reasonChar},
		{name: "right-to-left override", id: "\u202e" + isoTenantA, reason: reasonChar},
		{name: "zero-width space after tenant A", id: isoTenantA + "\u200b", reason: reasonChar},
		{name: "percent-encoded dots", id: "%2e%2e", reason: reasonChar},
		{name: "percent-encoded slash", id: "a%2fb", reason: reasonChar},
		{name: "space", id: "a b", reason: reasonChar},
		{name: "tab", id: "a\tb", reason: reasonChar},
		{name: "two tenants, federation syntax", id: isoTenantA + "|" + isoTenantB, reason: reasonChar},
		{name: "two tenants, comma", id: isoTenantA + "," + isoTenantB, reason: reasonChar},
		{name: "colon", id: "c:x", reason: reasonChar},
		{name: "empty", id: "", reason: "empty"},
		{name: "NUL byte", id: isoTenantA + "\x00"},
		{name: "newline", id: "a\nb"},
		{name: "carriage return", id: "a\rb"},
		{name: "invalid UTF-8", id: "a\xffb", reason: reasonChar, httpOnly: true},
	}
}

// fsEntry is one path under a snapshot's root.
type fsEntry struct {
	dir  bool
	size int64
}

// snapshotTree lists every path under root, relative to it.
func snapshotTree(root string) (map[string]fsEntry, error) {
	out := map[string]fsEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p != root {
				return nil // removed while walking (a TSDB's temporary file)
			}
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		var size int64
		if info, err := d.Info(); err == nil {
			size = info.Size()
		}
		out[rel] = fsEntry{dir: d.IsDir(), size: size}
		return nil
	})
	return out, err
}

// treeRules says what may exist under the root of a snapshot.
type treeRules struct {
	dataDirs []string        // relative to root: one per node
	files    map[string]bool // other paths allowed, relative to root (log files)
	sentinel string          // relative to root: a directory that must keep exactly its one file
	tenants  map[string]bool // legitimate tenants: <data dir>/tsdb/<tenant> may grow
}

// checkTree returns what is wrong in after: paths outside every data dir
// (but the allowed files and the sentinel), a changed sentinel, a tenant
// directory of no legitimate tenant, a path component that contains a
// hostile id, and paths new since before anywhere but in a legitimate
// tenant's TSDB.
func checkTree(before, after map[string]fsEntry, rules treeRules, hostile []hostileID) []string {
	var problems []string
	under := func(rel, dir string) bool {
		return rel == dir || strings.HasPrefix(rel, dir+string(filepath.Separator))
	}
	dataDirOf := func(rel string) (string, bool) {
		for _, d := range rules.dataDirs {
			if under(rel, d) {
				return d, true
			}
		}
		return "", false
	}
	tenantOf := func(rel, dataDir string) (string, bool) {
		inner, _ := filepath.Rel(dataDir, rel)
		parts := strings.Split(inner, string(filepath.Separator))
		if len(parts) >= 2 && parts[0] == "tsdb" {
			return parts[1], true
		}
		return "", false
	}
	names := map[string]bool{}
	for _, h := range hostile {
		if h.id != "" && h.id != "." && h.id != ".." {
			names[h.id] = true
		}
		if len(h.id) > tenant.MaxIDLength {
			names[h.id[:tenant.MaxIDLength]] = true // cut to the limit: still not a tenant
		}
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range after {
			if !yield(p) {
				return
			}
		}
	})
	sentinelFiles := 0
	for _, rel := range paths {
		for _, comp := range strings.Split(rel, string(filepath.Separator)) {
			for n := range names {
				if strings.Contains(comp, n) {
					problems = append(problems, fmt.Sprintf("%s: a path component contains the hostile tenant id %q", rel, n))
				}
			}
		}
		dataDir, inData := dataDirOf(rel)
		switch {
		case rel == rules.sentinel:
		case under(rel, rules.sentinel):
			sentinelFiles++
			if before[rel] != after[rel] {
				problems = append(problems, fmt.Sprintf("%s: the sentinel's file changed", rel))
			}
		case rules.files[rel]:
		case !inData:
			problems = append(problems, fmt.Sprintf("%s: outside every node's data dir", rel))
		default:
			id, inTSDB := tenantOf(rel, dataDir)
			if inTSDB && !rules.tenants[id] {
				problems = append(problems, fmt.Sprintf("%s: the TSDB of %q, which is no tenant that pushed", rel, id))
			}
			if _, old := before[rel]; !old && !(inTSDB && rules.tenants[id]) {
				problems = append(problems, fmt.Sprintf("%s: created during the hostile requests outside a legitimate tenant's TSDB", rel))
			}
		}
	}
	if sentinelFiles != 1 {
		problems = append(problems, fmt.Sprintf("%s holds %d entries, want its 1 file", rules.sentinel, sentinelFiles))
	}
	return problems
}
