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
// as VmHWM at the last reading (so it covers push and settle, not queries).
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

// figure is one row of the report: how to read it from a result.
type figure struct {
	name string
	unit string
	get  func(r *result) float64
}

func figures(results []*result) []figure {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fs := []figure{
		{"accepted samples/s", "", func(r *result) float64 { return r.SamplesPerSecond }},
		{"server CPU-s per M samples", "s", func(r *result) float64 { return r.CPUSecondsPerMSmp }},
		{"peak RSS", "MiB", func(r *result) float64 { return float64(r.PeakRSSBytes) / (1 << 20) }},
		{"steady RSS", "MiB", func(r *result) float64 { return float64(r.SteadyRSSBytes) / (1 << 20) }},
		{"steady RSS per active series", "B", func(r *result) float64 { return r.BytesPerSeries }},
		{"push latency p50", "ms", func(r *result) float64 { return ms(r.PushP50) }},
		{"push latency p99", "ms", func(r *result) float64 { return ms(r.PushP99) }},
	}
	if len(results) == 0 {
		return fs
	}
	for i, q := range results[0].Queries {
		fs = append(fs,
			figure{"query " + q.Name + " p50", "ms", func(r *result) float64 { return ms(queryAt(r, i).P50) }},
			figure{"query " + q.Name + " p99", "ms", func(r *result) float64 { return ms(queryAt(r, i).P99) }},
		)
	}
	return fs
}

func queryAt(r *result, i int) queryFigures {
	if i < len(r.Queries) {
		return r.Queries[i]
	}
	return queryFigures{}
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
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"figure"}
	for _, r := range results {
		head = append(head, r.Target)
	}
	ratio := len(results) == 2
	if ratio {
		head = append(head, results[0].Target+"/"+results[1].Target)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, f := range figures(results) {
		name := f.name
		if f.unit != "" {
			name += " (" + f.unit + ")"
		}
		row := []string{name}
		var vals []float64
		for _, r := range results {
			v := f.get(r)
			vals = append(vals, v)
			row = append(row, formatFigure(v))
		}
		if ratio {
			if vals[1] != 0 {
				row = append(row, fmt.Sprintf("%.2f", vals[0]/vals[1]))
			} else {
				row = append(row, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
}

func formatFigure(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
