package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/tenant"
)

// The long-term tests write a few simulated days of one sample a minute per
// series, all in the past, and check every sample through the querier as
// the data moves from the ingesters to the bucket, is compacted and is
// retained. Values are a function of (series, minute), so every answer is
// checked against what was written, not only against an earlier answer.

const (
	ltInterval = time.Minute
	ltRange    = 2 * time.Hour // the ingesters' block range
	// ltWindow is the time range of one raw-sample query (a matrix
	// selector): 720 samples a series, a few MB of JSON per tenant.
	ltWindow = 12 * time.Hour
	// ltPushSpan is the time range of one push: every series' samples of
	// an hour, in time order, well inside the head's appendable window.
	ltPushSpan = time.Hour
)

// ltTenant is what one tenant wrote: series × minutes in [start, end].
type ltTenant struct {
	id         string
	start, end int64 // ms, first and last sample (both aligned to the interval)
	series     []labels.Labels
	jobs       []string
}

// newLTTenant builds jobs × instances series of two metrics, a counter and
// a gauge, sampled every minute from start for span.
func newLTTenant(id string, jobs, instances int, start time.Time, span time.Duration) *ltTenant {
	d := &ltTenant{id: id, start: start.UnixMilli(), end: start.Add(span - ltInterval).UnixMilli()}
	for j := range jobs {
		d.jobs = append(d.jobs, fmt.Sprintf("job-%d", j))
	}
	for _, metric := range []string{"lt_requests_total", "lt_temperature_celsius"} {
		for _, job := range d.jobs {
			for i := range instances {
				d.series = append(d.series, labels.FromStrings(
					"__name__", metric, "job", job, "instance", fmt.Sprintf("inst-%02d", i)))
			}
		}
	}
	slices.SortFunc(d.series, labels.Compare)
	return d
}

// samples is the number of samples of one series.
func (d *ltTenant) samples() int { return int((d.end-d.start)/ltInterval.Milliseconds()) + 1 }

// value is series s's sample at ts: counters grow by s+1 a minute from a
// per-series base, gauges cycle; all are exact in binary.
func (d *ltTenant) value(s int, ts int64) float64 {
	m := (ts - d.start) / ltInterval.Milliseconds()
	if d.series[s].Get("__name__") == "lt_requests_total" {
		return float64(1000*s) + float64(int64(s+1)*m)
	}
	return float64((m*7+int64(s)*13)%100) + 0.25
}

// pushAll writes every sample through the distributor, one hour of every
// series per push, in time order.
func (d *ltTenant) pushAll(ctx context.Context, distributor string) error {
	client := &http.Client{Timeout: time.Minute}
	step := ltInterval.Milliseconds()
	for from := d.start; from <= d.end; from += ltPushSpan.Milliseconds() {
		to := min(from+ltPushSpan.Milliseconds()-step, d.end)
		wr := &prompb.WriteRequest{}
		for s, ls := range d.series {
			ts := prompb.TimeSeries{}
			ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
			for t := from; t <= to; t += step {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t, Value: d.value(s, t)})
			}
			wr.Timeseries = append(wr.Timeseries, ts)
		}
		res, err := push(ctx, client, http.MethodPost, distributor+"/api/v1/push", encodeWrite(wr), map[string]string{tenant.Header: d.id})
		if err != nil {
			return fmt.Errorf("push %s at %s: %w", d.id, time.UnixMilli(from).UTC(), err)
		}
		if res.Status/100 != 2 {
			return fmt.Errorf("push %s at %s: status %d: %s", d.id, time.UnixMilli(from).UTC(), res.Status, truncate(res.Body, 300))
		}
	}
	return nil
}

// ltAPI queries one tenant through the querier.
type ltAPI struct {
	base, tenant string
	client       *http.Client
}

func newLTAPI(base, tenantID string) *ltAPI {
	return &ltAPI{base: base, tenant: tenantID, client: &http.Client{Timeout: 2 * time.Minute}}
}

// do sends params to path and returns the body of a 200 answer: by GET for
// /label/<name>/values (Prometheus serves it only so), else POSTed as a form.
func (a *ltAPI) do(ctx context.Context, path string, params url.Values) ([]byte, error) {
	var req *http.Request
	var err error
	if strings.HasPrefix(path, "/api/v1/label/") {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"?"+params.Encode(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err != nil {
		return nil, err
	}
	req.Header.Set(tenant.Header, a.tenant)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %v: %w", path, params, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %d: %s", path, params.Get("query"), resp.StatusCode, truncate(string(b), 400))
	}
	return b, nil
}

func (a *ltAPI) query(ctx context.Context, q string, ts int64) (apiResult, error) {
	b, err := a.do(ctx, "/api/v1/query", url.Values{"query": {q}, "time": {formatTime(time.UnixMilli(ts))}})
	if err != nil {
		return apiResult{}, err
	}
	return decodeAPIResult(b)
}

func (a *ltAPI) queryRange(ctx context.Context, q string, start, end int64, step time.Duration) (apiResult, error) {
	b, err := a.do(ctx, "/api/v1/query_range", url.Values{
		"query": {q}, "start": {formatTime(time.UnixMilli(start))}, "end": {formatTime(time.UnixMilli(end))},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
	if err != nil {
		return apiResult{}, err
	}
	return decodeAPIResult(b)
}

// strings returns the data of an answer whose data is a list of strings
// (/labels, /label/<name>/values) or of label sets (/series, as their
// String()), sorted.
func (a *ltAPI) strings(ctx context.Context, path string, params url.Values) ([]string, error) {
	b, err := a.do(ctx, path, params)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	var out []string
	if err := json.Unmarshal(ans.Data, &out); err != nil {
		out = nil // Unmarshal fills what it could before the error
		var sets []map[string]string
		if err2 := json.Unmarshal(ans.Data, &sets); err2 != nil {
			return nil, fmt.Errorf("decode data of %s: %w", path, err)
		}
		for _, s := range sets {
			out = append(out, labels.FromMap(s).String())
		}
	}
	sort.Strings(out)
	return out, nil
}

// ltMeta is what the long-term test reads of one tenant through the API:
// series, label names and values over the whole span, and a few PromQL
// aggregations (compared bit for bit between phases).
type ltMeta struct {
	Series, LabelNames, Jobs, Names []string
	Aggs                            map[string]apiResult
}

// ltAggs are the aggregations recorded per phase: range queries over the
// span at a 1h step, and one instant query over a day.
var ltAggs = []string{
	`sum by (job) (rate(lt_requests_total[10m]))`,
	`max by (job) (lt_temperature_celsius)`,
	`count(lt_temperature_celsius)`,
	`sum(increase(lt_requests_total[1h]))`,
	`quantile(0.9, lt_temperature_celsius)`,
}

// meta reads d's ltMeta between from and to (ms).
func (a *ltAPI) meta(ctx context.Context, d *ltTenant, from, to int64) (ltMeta, error) {
	m := ltMeta{Aggs: map[string]apiResult{}}
	rng := url.Values{"start": {formatTime(time.UnixMilli(from))}, "end": {formatTime(time.UnixMilli(to))}}
	with := func(k, v string) url.Values {
		p := url.Values{k: {v}}
		for k, v := range rng {
			p[k] = v
		}
		return p
	}
	var err error
	if m.Series, err = a.strings(ctx, "/api/v1/series", with("match[]", `{__name__=~"lt_.+"}`)); err != nil {
		return m, err
	}
	if m.LabelNames, err = a.strings(ctx, "/api/v1/labels", rng); err != nil {
		return m, err
	}
	if m.Jobs, err = a.strings(ctx, "/api/v1/label/job/values", rng); err != nil {
		return m, err
	}
	if m.Names, err = a.strings(ctx, "/api/v1/label/__name__/values", rng); err != nil {
		return m, err
	}
	for _, q := range ltAggs {
		r, err := a.queryRange(ctx, q, from, to, time.Hour)
		if err != nil {
			return m, err
		}
		m.Aggs[q] = r
	}
	q := `count_over_time(lt_temperature_celsius[1d])`
	if m.Aggs[q], err = a.query(ctx, q, to); err != nil {
		return m, err
	}
	return m, nil
}

// diffMeta describes how got differs from want ("" when equal).
func diffMeta(want, got ltMeta) string {
	var out []string
	for _, c := range []struct {
		what      string
		want, got []string
	}{
		{"/series", want.Series, got.Series}, {"/labels", want.LabelNames, got.LabelNames},
		{"/label/job/values", want.Jobs, got.Jobs}, {"/label/__name__/values", want.Names, got.Names},
	} {
		if !slices.Equal(c.want, c.got) {
			out = append(out, fmt.Sprintf("%s: want %d %.200q, got %d %.200q", c.what, len(c.want), c.want, len(c.got), c.got))
		}
	}
	for q, w := range want.Aggs {
		if d := diffResult(w, got.Aggs[q]); d != "" {
			out = append(out, q+": "+d)
		}
	}
	return strings.Join(out, "; ")
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

// checkRaw reads every raw sample of d with matrix selectors over
// ltWindow-long windows and compares them with what was written, from
// keepFrom on (ms; earlier samples must be gone). It returns the number of
// samples read and a description of the first differences.
func (a *ltAPI) checkRaw(ctx context.Context, d *ltTenant, keepFrom int64) (int, error) {
	index := map[string]int{}
	for i, ls := range d.series {
		index[ls.String()] = i
	}
	step := ltInterval.Milliseconds()
	read := 0
	var problems []string
	for from := d.start; from <= d.end; from += ltWindow.Milliseconds() {
		at := from + ltWindow.Milliseconds() - 1 // (at-window, at] holds [from, from+window)
		r, err := a.query(ctx, fmt.Sprintf(`{__name__=~"lt_.+"}[%dms]`, ltWindow.Milliseconds()), at)
		if err != nil {
			return read, err
		}
		wantFirst := max(from, keepFrom)
		if rem := (wantFirst - d.start) % step; rem != 0 {
			wantFirst += step - rem
		}
		wantLast := min(at, d.end)
		wantN := 0
		if wantLast >= wantFirst {
			wantN = int((wantLast-wantFirst)/step) + 1
		}
		if wantN > 0 && len(r.Series) != len(d.series) {
			problems = append(problems, fmt.Sprintf("window at %s: %d series, want %d", time.UnixMilli(from).UTC(), len(r.Series), len(d.series)))
		}
		for _, s := range r.Series {
			si, ok := index[s.Labels.String()]
			if !ok {
				problems = append(problems, "unknown series "+s.Labels.String())
				continue
			}
			read += len(s.Points)
			if len(s.Points) != wantN {
				problems = append(problems, fmt.Sprintf("%s in window at %s: %d samples, want %d", s.Labels, time.UnixMilli(from).UTC(), len(s.Points), wantN))
			}
			for k, p := range s.Points {
				wt := wantFirst + int64(k)*step
				if p.T != wt || !sameBits(p.V, d.value(si, wt)) {
					problems = append(problems, fmt.Sprintf("%s sample %d: got %v, want {%d %v}", s.Labels, k, p, wt, d.value(si, wt)))
					break
				}
			}
		}
		if len(problems) > 5 {
			break
		}
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], "...")
		}
		return read, fmt.Errorf("raw samples of %s differ: %s", d.id, strings.Join(problems, "; "))
	}
	return read, nil
}

// ltBucket reads the S3 bucket directly (the test's view of object storage).
type ltBucket struct {
	c      *minio.Client
	bucket string
}

func newLTBucket(t *testing.T, s3 *procs.S3) *ltBucket {
	t.Helper()
	c, err := minio.New(s3.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), Region: s3.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ltBucket{c: c, bucket: s3.Bucket}
}

// objects lists every object under prefix: key → size.
func (b *ltBucket) objects(ctx context.Context, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, o.Err)
		}
		out[o.Key] = o.Size
	}
	return out, nil
}

// ltUsage sums a tenant's block objects in the bucket.
type ltUsage struct {
	Blocks      int   // directories with a meta.json
	Marked      int   // of them with a deletion mark
	Bytes       int64 // every object of every block directory
	ChunkBytes  int64 // chunks/* objects
	BlockIDs    []string
	OtherObject []string // objects outside block directories, bucket index excepted
}

func usageOf(tenantID string, objs map[string]int64) ltUsage {
	var u ltUsage
	ids := map[string]bool{}
	for key, size := range objs {
		rest, ok := strings.CutPrefix(key, tenantID+"/")
		if !ok {
			continue
		}
		id, file, ok := strings.Cut(rest, "/")
		if !ok {
			if rest != "bucket-index.json.gz" {
				u.OtherObject = append(u.OtherObject, key)
			}
			continue
		}
		u.Bytes += size
		if strings.HasPrefix(file, "chunks/") {
			u.ChunkBytes += size
		}
		switch file {
		case "meta.json":
			ids[id] = true
		case "deletion-mark.json":
			u.Marked++
		}
	}
	for id := range ids {
		u.BlockIDs = append(u.BlockIDs, id)
	}
	sort.Strings(u.BlockIDs)
	u.Blocks = len(u.BlockIDs)
	return u
}

// ltIndex is the part of a tenant's bucket-index.json.gz the test reads.
type ltIndex struct {
	UpdatedAt int64 `json:"updated_at"`
	Blocks    []struct {
		ID              string `json:"id"`
		MinTime         int64  `json:"min_time"`
		MaxTime         int64  `json:"max_time"`
		Source          string `json:"source"`
		CompactionLevel int    `json:"compaction_level"`
		Ingester        string `json:"ingester"`
		SizeBytes       int64  `json:"size_bytes"`
	} `json:"blocks"`
	DeletionMarks []struct {
		ID string `json:"id"`
	} `json:"deletion_marks"`
}

// index reads tenantID's bucket index; nil when there is none yet.
func (b *ltBucket) index(ctx context.Context, tenantID string) (*ltIndex, error) {
	o, err := b.c.GetObject(ctx, b.bucket, path.Join(tenantID, "bucket-index.json.gz"), minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	raw, err := io.ReadAll(o)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, nil
		}
		return nil, fmt.Errorf("read bucket index of %s: %w", tenantID, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("bucket index of %s: %w", tenantID, err)
	}
	var ix ltIndex
	if err := json.NewDecoder(zr).Decode(&ix); err != nil {
		return nil, fmt.Errorf("bucket index of %s: %w", tenantID, err)
	}
	return &ix, nil
}

// live returns the index's blocks without a deletion mark.
func (ix *ltIndex) live() []int {
	marked := map[string]bool{}
	for _, m := range ix.DeletionMarks {
		marked[m.ID] = true
	}
	var out []int
	for i, b := range ix.Blocks {
		if !marked[b.ID] {
			out = append(out, i)
		}
	}
	return out
}

// perRange counts the live blocks overlapping each ltRange-aligned range
// of [start, end] (ms): the key is the range's start.
func (ix *ltIndex) perRange(start, end int64) map[int64]int {
	r := ltRange.Milliseconds()
	out := map[int64]int{}
	for w := start - start%r; w <= end; w += r {
		out[w] = 0
		for _, i := range ix.live() {
			if b := ix.Blocks[i]; b.MinTime < w+r && w < b.MaxTime {
				out[w]++
			}
		}
	}
	return out
}

// ingestersPerRange counts the distinct ingesters whose live blocks
// overlap each ltRange-aligned range of [start, end] (ms).
func (ix *ltIndex) ingestersPerRange(start, end int64) map[int64]int {
	r := ltRange.Milliseconds()
	out := map[int64]int{}
	for w := start - start%r; w <= end; w += r {
		seen := map[string]bool{}
		for _, i := range ix.live() {
			if b := ix.Blocks[i]; b.MinTime < w+r && w < b.MaxTime && b.Ingester != "" {
				seen[b.Ingester] = true
			}
		}
		out[w] = len(seen)
	}
	return out
}

// countsOf summarises perRange: how many ranges have each block count.
func countsOf(per map[int64]int) map[int]int {
	out := map[int]int{}
	for _, n := range per {
		out[n]++
	}
	return out
}

// ltPost POSTs to url and returns the body of a 200 answer.
// ltAdmin is the cluster's -runtime-config.admin-tenant.
const ltAdmin = "lt-operator"

// ltPost posts to an operator endpoint as the admin tenant.
func ltPost(ctx context.Context, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Scope-OrgID", ltAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("post %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("post %s: status %d: %s", u, resp.StatusCode, truncate(string(b), 500))
	}
	return string(b), nil
}

// ltGet GETs url as tenantID and returns the body of a 200 answer.
func ltGet(ctx context.Context, u, tenantID string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(tenant.Header, tenantID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("get %s: status %d: %s", u, resp.StatusCode, truncate(string(b), 500))
	}
	return string(b), nil
}

// ltPoll is procs.Poll every interval with a deadline; the test fails with
// the last reason.
func ltPoll(t *testing.T, what string, timeout, interval time.Duration, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := ""
	err := procs.Poll(ctx, interval, func() (bool, string) {
		ok, reason := cond(ctx)
		if ctx.Err() == nil || last == "" {
			last = reason // not the deadline cutting the last try short
		}
		return ok, reason
	})
	if err != nil {
		t.Fatalf("%s: %v (last reason before the deadline: %s)", what, err, last)
	}
}
