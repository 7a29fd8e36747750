package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/strata-metrics/strata/internal/procs"
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

// pushAll writes every sample through dist (a client of a distributor,
// as the tenant), one hour of every series per push, in time order.
func (d *ltTenant) pushAll(ctx context.Context, dist *client) error {
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
		res, err := dist.push(ctx, encodeWrite(wr))
		if err != nil {
			return fmt.Errorf("push %s at %s: %w", d.id, time.UnixMilli(from).UTC(), err)
		}
		if res.Status/100 != 2 {
			return fmt.Errorf("push %s at %s: status %d: %s", d.id, time.UnixMilli(from).UTC(), res.Status, truncate(res.text(), 300))
		}
	}
	return nil
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

// ltMetaOf reads d's ltMeta between from and to (ms) through a, a client
// of the querier as d.
func ltMetaOf(ctx context.Context, a *client, d *ltTenant, from, to int64) (ltMeta, error) {
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
		r, err := a.queryRange(ctx, q, time.UnixMilli(from), time.UnixMilli(to), time.Hour)
		if err != nil {
			return m, err
		}
		m.Aggs[q] = r
	}
	q := `count_over_time(lt_temperature_celsius[1d])`
	if m.Aggs[q], err = a.query(ctx, q, time.UnixMilli(to)); err != nil {
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

// ltCheckRaw reads, through a, every raw sample of d with matrix selectors over
// ltWindow-long windows and compares them with what was written, from
// keepFrom on (ms; earlier samples must be gone). It returns the number of
// samples read and a description of the first differences.
func ltCheckRaw(ctx context.Context, a *client, d *ltTenant, keepFrom int64) (int, error) {
	index := map[string]int{}
	for i, ls := range d.series {
		index[ls.String()] = i
	}
	step := ltInterval.Milliseconds()
	read := 0
	var problems []string
	for from := d.start; from <= d.end; from += ltWindow.Milliseconds() {
		at := from + ltWindow.Milliseconds() - 1 // (at-window, at] holds [from, from+window)
		r, err := a.query(ctx, fmt.Sprintf(`{__name__=~"lt_.+"}[%dms]`, ltWindow.Milliseconds()), time.UnixMilli(at))
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

// live returns the index's blocks without a deletion mark.
func (ix *bucketIndex) live() []int {
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
func (ix *bucketIndex) perRange(start, end int64) map[int64]int {
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
func (ix *bucketIndex) ingestersPerRange(start, end int64) map[int64]int {
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

// ltAdmin is the cluster's -runtime-config.admin-tenant.
const ltAdmin = procs.OperatorTenant
