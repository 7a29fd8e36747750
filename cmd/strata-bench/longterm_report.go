package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// longtermResult is every figure of -mode=longterm.
type longtermResult struct {
	Config            LongtermConfig
	Query             genStats // the query data set as uploaded (RF copies)
	Density           genStats // the bytes-per-sample data set as uploaded
	QueryAfter        bucketStats
	DensityAfter      bucketStats
	CompactRuns       int
	MergeWall         time.Duration // strata start until the first requested run returned: every merge done
	Families          []familyBytes // of the bytes-per-sample set after compaction
	CompactWall       time.Duration
	CompactCPUSeconds float64
	CompactPeakRSS    int64
	Queries           []longtermQuery
	Verify            verifyResult
}

// bytesPerSample is bytes over samples, 0 without samples.
func bytesPerSample(bytes, samples int64) float64 {
	if samples == 0 {
		return 0
	}
	return float64(bytes) / float64(samples)
}

// printLongterm writes the scale, the bucket figures, and the query table.
func printLongterm(out io.Writer, r *longtermResult) {
	c := r.Config
	fmt.Fprintf(out, "longterm: blocks written as %d ingesters would ship them (RF %d copies of each 2h block), merged by strata's compactor (2h, 12h, 24h), queried through the store-gateway of strata -target=all (filesystem bucket)\n",
		c.ReplicationF, c.ReplicationF)
	if c.DensitySeries > 0 {
		fmt.Fprintf(out, "bytes-per-sample set (tenant %s): %d node_exporter-like series, %s interval, %s = %d samples\n",
			densityTenant, c.DensitySeries, c.DensityInterval, c.DensitySpan, r.Density.Samples)
	}
	fmt.Fprintf(out, "query set (tenant anonymous): %d node_exporter-like series, %s interval, %s = %d samples\n",
		c.Series, c.Interval, c.Span, r.Query.Samples)
	fmt.Fprintf(out, "generation: %s wall for both sets (%.2f M samples/s); compaction: every merge done %s after strata started, merged blocks deleted after %s (-compactor.deletion-delay=%s, %d runs), %.1f CPU-s, peak RSS %.0f MiB\n",
		(r.Query.Wall + r.Density.Wall).Round(time.Millisecond),
		float64(r.Query.Samples+r.Density.Samples)/(r.Query.Wall+r.Density.Wall).Seconds()/1e6,
		r.MergeWall.Round(time.Millisecond), r.CompactWall.Round(time.Millisecond), compactionDeletionDelay, r.CompactRuns, r.CompactCPUSeconds, mib(r.CompactPeakRSS))
	fmt.Fprintf(out, "verify: %d points of %d series queried raw equal the generated samples: %d mismatches%s\n",
		r.Verify.Points, len(r.Verify.Series), r.Verify.Mismatches, firstOf(r.Verify.FirstMismatch))

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tblocks\tMiB\tsamples\tbytes/sample\tindex share\t")
	row := func(name string, blocks int, bytes, index, samples int64) {
		share := 0.0
		if bytes > 0 {
			share = float64(index) / float64(bytes) * 100
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%.3f\t%.0f%%\t\n", name, blocks, mib(bytes), samples, bytesPerSample(bytes, samples), share)
	}
	sets := []struct {
		name          string
		before        genStats
		after         bucketStats
		rf            int
		distinctCount int64
	}{}
	if c.DensitySeries > 0 {
		sets = append(sets, struct {
			name          string
			before        genStats
			after         bucketStats
			rf            int
			distinctCount int64
		}{"bytes-per-sample set " + c.DensityInterval.String(), r.Density, r.DensityAfter, c.ReplicationF, r.Density.Samples})
	}
	sets = append(sets, struct {
		name          string
		before        genStats
		after         bucketStats
		rf            int
		distinctCount int64
	}{"query set " + c.Interval.String(), r.Query, r.QueryAfter, c.ReplicationF, r.Query.Samples})
	for _, s := range sets {
		fmt.Fprintf(tw, "%s\t\t\t\t\t\t\n", s.name)
		row(fmt.Sprintf("  before: %d ingester copies (per distinct sample)", s.rf), s.before.Blocks*s.rf, s.before.UploadBytes, 0, s.distinctCount)
		row("  one copy of each 2h block (Prometheus' own 2h blocks)", s.before.Blocks, s.before.BlockBytes, 0, s.distinctCount)
		row(fmt.Sprintf("  after compaction (levels %d-%d, blocks up to %s)", s.after.MinLevel, s.after.MaxLevel, shortDur(s.after.MaxSpan)), s.after.Blocks, s.after.Bytes, s.after.IndexBytes, s.after.Samples)
	}
	tw.Flush()
	mainSet := r.QueryAfter
	label := "query set"
	if c.DensitySeries > 0 {
		mainSet, label = r.DensityAfter, "bytes-per-sample set"
	}
	bps := bytesPerSample(mainSet.Bytes, mainSet.Samples)
	verdict := "MISS"
	if bps <= 1.4 {
		verdict = "PASS"
	}
	fmt.Fprintf(out, "bytes/sample after compaction (%s): %.3f, target at most 1.4: %s\n", label, bps, verdict)
	fmt.Fprintf(out, "chunk bytes per sample by family (%s after compaction; the index adds %.3f B/sample over all):\n", label, bytesPerSample(mainSet.IndexBytes, mainSet.Samples))
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "family	value models	series	samples	chunk bytes/sample	")
	for _, f := range r.Families {
		fmt.Fprintf(tw, "%s	%s	%d	%d	%.3f	\n", f.Family, f.Kinds, f.Series, f.Samples, bytesPerSample(f.ChunkBytes, f.Samples))
	}
	tw.Flush()
	fmt.Fprintln(out)

	fmt.Fprintf(out, "queries over %s, step %s, each cold run in a fresh strata with the store-gateway's local files deleted:\n", c.Span, c.QueryStep)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tseries\truns\tp50 ms\tp99 ms\tchunks cache hit\tpostings cache hit\tchunks fetched MiB/run\tindex fetched MiB/run\tchunks cache evictions/run\terrors\t")
	for _, q := range r.Queries {
		for _, ph := range []struct {
			name string
			lat  []time.Duration
			m    map[string]float64
		}{{"cold", q.Cold, q.ColdCounters}, {"refresh", q.Refresh, nil}, {"warm", q.Warm, q.WarmCounters}} {
			runs := float64(max(1, len(ph.lat)))
			fmt.Fprintf(tw, "%s %s\t%d\t%d\t%.1f\t%.1f\t%s\t%s\t%.1f\t%.1f\t%.0f\t%d\t\n", q.Name, ph.name, q.Series, len(ph.lat),
				millis(percentile(ph.lat, 0.5)), millis(percentile(ph.lat, 0.99)),
				hitRate(ph.m, "chunks"), hitRate(ph.m, "postings"),
				ph.m[`strata_storegateway_bucket_fetched_bytes_total{what="chunks"}`]/(1<<20)/runs,
				ph.m[`strata_storegateway_bucket_fetched_bytes_total{what="index"}`]/(1<<20)/runs,
				ph.m[`strata_storegateway_cache_evictions_total{cache="chunks"}`]/runs, q.Errors)
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "  cold: the first query of a fresh strata (it fills the query-frontend's results cache); refresh: the identical query again, from that cache; warm: later ones with Cache-Control: no-store (split, read path warm, no results cache)")
	for _, q := range r.Queries {
		fmt.Fprintf(out, "  %s: %s\n", q.Name, q.Query)
		if cold, refresh := percentile(q.Cold, 0.5), percentile(q.Refresh, 0.5); refresh > 0 {
			fmt.Fprintf(out, "    through the query-frontend: cold %.1f ms, identical refresh %.1f ms (%.0fx faster)\n", millis(cold), millis(refresh), float64(cold)/float64(refresh))
		}
		fmt.Fprintf(out, "    per cold run: %.0f series and %.0f chunks returned by the store-gateway, %.0f block loads, %.0f index-header builds, %.0f chunk range reads; strata start to ready %s\n",
			q.ColdCounters[`strata_storegateway_series_returned_total`]/float64(max(1, len(q.Cold))),
			q.ColdCounters[`strata_storegateway_chunks_returned_total`]/float64(max(1, len(q.Cold))),
			q.ColdCounters[`strata_storegateway_block_loads_total`]/float64(max(1, len(q.Cold))),
			q.ColdCounters[`strata_storegateway_index_header_builds_total`]/float64(max(1, len(q.Cold))),
			q.ColdCounters[`strata_storegateway_chunk_range_requests_total`]/float64(max(1, len(q.Cold))),
			durations(q.StartDuration))
		if q.LastError != "" {
			fmt.Fprintf(out, "    last error: %s\n", q.LastError)
		}
	}
}

// hitRate is hits/(hits+misses) of one store-gateway cache, "-" without
// lookups.
func hitRate(m map[string]float64, cache string) string {
	h := m[`strata_storegateway_cache_hits_total{cache="`+cache+`"}`]
	ms := m[`strata_storegateway_cache_misses_total{cache="`+cache+`"}`]
	if h+ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%% of %.0f", h/(h+ms)*100, h+ms) // lookups over all runs of the phase
}

func firstOf(s string) string {
	if s == "" {
		return ""
	}
	return " (first: " + s + ")"
}

func shortDur(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}

func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(s, ", ")
}

// rangeSeries is one series of a query_range answer: its points as
// [timestamp, "value"] pairs.
type rangeSeries struct {
	Metric map[string]string   `json:"metric"`
	Values [][]json.RawMessage `json:"values"`
}

// queryRangeJSON runs query_range with millisecond bounds and step and
// returns the matrix.
func queryRangeJSON(ctx context.Context, client *http.Client, baseURL, query string, from, to, stepMs int64) ([]rangeSeries, error) {
	form := url.Values{
		"query": {query},
		"start": {strconv.FormatFloat(float64(from)/1000, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(to)/1000, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(float64(stepMs)/1000, 'f', 3, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build query request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []rangeSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return nil, fmt.Errorf("decode answer to %s (status %d): %w", query, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || ans.Status != "success" {
		return nil, fmt.Errorf("query %s: status %d: %s", query, resp.StatusCode, ans.Error)
	}
	return ans.Data.Result, nil
}
