package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// result is every figure of one server.
type result struct {
	Target            string
	Series            int
	Requests          int
	RejectedRequests  int
	Retries           int
	FirstError        string `json:",omitempty"`
	SamplesAccepted   int64
	PushSeconds       float64
	SamplesPerSecond  float64
	ServerCPUSeconds  float64
	CPUSecondsPerMSmp float64 // server CPU-seconds per million accepted samples
	ClientCPUSeconds  float64 // the generator's own cost, for reference
	PeakRSSBytes      int64
	SteadyRSSBytes    int64
	BytesPerSeries    float64 // steady RSS / active series
	PushP50, PushP99  time.Duration
	Queries           []queryFigures
}

type queryFigures struct {
	Name     string
	Query    string
	Reps     int
	Errors   int
	Series   int
	P50, P99 time.Duration
	Error    string `json:",omitempty"`
}

// newResult computes the figures: CPU from the usage before and after the
// push, steady RSS as the median of the readings after the settle, peak RSS
// as VmHWM at the last reading, or the largest reading when that is more
// (so it covers push and settle, not queries).
func newResult(target string, cfg Config, push pushResult, before, after procs.Usage, clientCPU float64, rss []int64, peak int64, qs []queryResult) *result {
	r := &result{
		Target:           target,
		Series:           cfg.Series,
		Requests:         push.Requests,
		RejectedRequests: push.Rejected,
		Retries:          push.Retries,
		FirstError:       push.FirstError,
		SamplesAccepted:  push.SamplesAccepted,
		PushSeconds:      push.Wall.Seconds(),
		ServerCPUSeconds: after.CPUSeconds - before.CPUSeconds,
		ClientCPUSeconds: clientCPU,
		PeakRSSBytes:     peak,
		SteadyRSSBytes:   median(rss),
	}
	// The kernel updates VmHWM lazily (at some unmaps and at exit), so a
	// reading of VmRSS can pass it: the peak is at least every reading.
	for _, v := range rss {
		r.PeakRSSBytes = max(r.PeakRSSBytes, v)
	}
	if push.Wall > 0 {
		r.SamplesPerSecond = float64(push.SamplesAccepted) / push.Wall.Seconds()
	}
	if push.SamplesAccepted > 0 {
		r.CPUSecondsPerMSmp = r.ServerCPUSeconds / float64(push.SamplesAccepted) * 1e6
	}
	r.BytesPerSeries = float64(r.SteadyRSSBytes) / float64(cfg.Series)
	r.PushP50, r.PushP99 = percentile(push.Latencies, 0.50), percentile(push.Latencies, 0.99)
	r.Queries = newQueryFigures(cfg, qs)
	return r
}

// newQueryFigures summarises the latencies of each dashboard query.
func newQueryFigures(cfg Config, qs []queryResult) []queryFigures {
	var out []queryFigures
	qdefs := dashboardQueries(cfg.QueryReps)
	for i, q := range qs {
		f := queryFigures{Name: q.Name, Reps: len(q.Latencies) + q.Errors, Errors: q.Errors, Series: q.Series, Error: q.LastError}
		if i < len(qdefs) {
			f.Query = qdefs[i].Query
		}
		f.P50, f.P99 = percentile(q.Latencies, 0.50), percentile(q.Latencies, 0.99)
		out = append(out, f)
	}
	return out
}

// percentile is the nearest-rank percentile of ds (0 for none).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// figures are the rows of the single-process table.
func figures(results []*result) []figure[*result] {
	fs := []figure[*result]{
		{"accepted samples/s", "", func(r *result) float64 { return r.SamplesPerSecond }},
		{"server CPU-s per M samples", "s", func(r *result) float64 { return r.CPUSecondsPerMSmp }},
		{"peak RSS", "MiB", func(r *result) float64 { return mib(r.PeakRSSBytes) }},
		{"steady RSS", "MiB", func(r *result) float64 { return mib(r.SteadyRSSBytes) }},
		{"steady RSS per active series", "B", func(r *result) float64 { return r.BytesPerSeries }},
		{"push latency p50", "ms", func(r *result) float64 { return millis(r.PushP50) }},
		{"push latency p99", "ms", func(r *result) float64 { return millis(r.PushP99) }},
	}
	if len(results) == 0 {
		return fs
	}
	return append(fs, queryRows(results[0].Queries, "", func(r *result) []queryFigures { return r.Queries })...)
}

// printReport writes the workload, per-server notes, and the figures table
// with a ratio column when exactly two servers were measured.
func printReport(out io.Writer, cfg Config, results []*result) {
	fmt.Fprintf(out, "workload: %d series x 10 labels, %d series/request, %d senders, %d rounds (%d samples), timestamps %s apart\n",
		cfg.Series, cfg.PerRequest, cfg.Senders, cfg.Rounds, int64(cfg.Series)*int64(cfg.Rounds), cfg.Interval)
	for _, r := range results {
		fmt.Fprintf(out, "%s: %d requests, %d rejected, %d retries, %.1fs pushing, server %.1f CPU-s, generator %.1f CPU-s\n",
			r.Target, r.Requests, r.RejectedRequests, r.Retries, r.PushSeconds, r.ServerCPUSeconds, r.ClientCPUSeconds)
		if r.FirstError != "" {
			fmt.Fprintf(out, "  first push error: %s\n", r.FirstError)
		}
		for _, q := range r.Queries {
			fmt.Fprintf(out, "  query %s: %d runs, %d errors, %d result series: %s\n", q.Name, q.Reps, q.Errors, q.Series, q.Query)
			if q.Error != "" {
				fmt.Fprintf(out, "    last error: %s\n", q.Error)
			}
		}
	}
	t := figureTable[*result]{results: results, figures: figures(results)}
	for _, r := range results {
		t.columns = append(t.columns, r.Target)
	}
	if len(results) == 2 {
		t.ratio = []int{0, 1}
	}
	t.print(out)
}

// figure is one row of a report table: its name, its unit, and how to read
// it from the result of one column. NaN means "does not apply" and prints
// as "-".
type figure[R any] struct {
	name string
	unit string
	get  func(r R) float64
}

// figureTable is a report table: one row per figure, one column per result,
// and optionally a ratio column of two results. Every mode prints its
// figures through it.
type figureTable[R any] struct {
	columns []string // heading of each result's column
	results []R
	figures []figure[R]
	// ratio, when it holds indices {i, j}, adds a column
	// results[i]/results[j], headed columns[i]/columns[j].
	ratio []int
}

// print writes the table, right-aligned, two spaces between columns.
func (t figureTable[R]) print(out io.Writer) {
	ratio := len(t.ratio) == 2 && max(t.ratio[0], t.ratio[1]) < len(t.results)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := append([]string{"figure"}, t.columns...)
	if ratio {
		head = append(head, t.columns[t.ratio[0]]+"/"+t.columns[t.ratio[1]])
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, f := range t.figures {
		name := f.name
		if f.unit != "" {
			name += " (" + f.unit + ")"
		}
		row := []string{name}
		var vals []float64
		for _, r := range t.results {
			v := f.get(r)
			vals = append(vals, v)
			row = append(row, formatFigure(v))
		}
		if ratio {
			row = append(row, formatRatio(vals[t.ratio[0]], vals[t.ratio[1]]))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
}

// queryRows are the p50 and p99 rows of each dashboard query in first (the
// first result's queries), suffix added to their names; queries gives a
// result's.
func queryRows[R any](first []queryFigures, suffix string, queries func(R) []queryFigures) []figure[R] {
	var fs []figure[R]
	for i, q := range first {
		fs = append(fs,
			figure[R]{"query " + q.Name + " p50" + suffix, "ms", func(r R) float64 { return millis(queryAt(queries(r), i).P50) }},
			figure[R]{"query " + q.Name + " p99" + suffix, "ms", func(r R) float64 { return millis(queryAt(queries(r), i).P99) }},
		)
	}
	return fs
}

// queryAt is qs[i], or no figures when a result has fewer queries.
func queryAt(qs []queryFigures, i int) queryFigures {
	if i < len(qs) {
		return qs[i]
	}
	return queryFigures{}
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// formatRatio is a/b to two decimals; "-" when b is 0 or either does not
// apply.
func formatRatio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func formatFigure(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) || math.Abs(v) >= 1000: // counts, and large figures
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
