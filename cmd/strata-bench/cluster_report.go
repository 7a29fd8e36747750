package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/strata-metrics/strata/internal/procs"
)

// clusterFigures are the rows of the cluster table.
func clusterFigures(results []*clusterResult) []figure[*clusterResult] {
	perIngester := func(r *clusterResult, f func(n nodeFigures) float64) (mean, most float64) {
		var k int
		for _, n := range r.Nodes {
			if n.Role == procs.RoleIngester {
				v := f(n)
				mean += v
				most = max(most, v)
				k++
			}
		}
		if k > 0 {
			mean /= float64(k)
		}
		return mean, most
	}
	fs := []figure[*clusterResult]{
		{"accepted samples/s (at the distributors)", "", func(r *clusterResult) float64 { return r.SamplesPerSecond }},
		{"CPU-s per M samples, all processes", "s", func(r *clusterResult) float64 { return r.CPUSecondsPerMSmp }},
		{"CPU-s per M samples, distributors", "s", func(r *clusterResult) float64 { return r.role(procs.RoleDistributor).CPUSecondsPerMSmp }},
		{"CPU-s per M samples, ingesters", "s", func(r *clusterResult) float64 { return r.role(procs.RoleIngester).CPUSecondsPerMSmp }},
		{"CPU-s per M samples, querier", "s", func(r *clusterResult) float64 { return r.role(procs.RoleQuerier).CPUSecondsPerMSmp }},
		{"active series per ingester, mean", "", func(r *clusterResult) float64 {
			m, _ := perIngester(r, func(n nodeFigures) float64 { return float64(n.ActiveSeries) })
			return m
		}},
		{"steady RSS per ingester, mean", "MiB", func(r *clusterResult) float64 {
			m, _ := perIngester(r, func(n nodeFigures) float64 { return mib(n.SteadyRSSBytes) })
			return m
		}},
		{"peak RSS per ingester, largest", "MiB", func(r *clusterResult) float64 {
			_, m := perIngester(r, func(n nodeFigures) float64 { return mib(n.PeakRSSBytes) })
			return m
		}},
		{"steady RSS per active series per ingester", "B", func(r *clusterResult) float64 { return r.IngesterBytesPerSeries }},
		{"ingester RSS, summed, per series pushed", "B", func(r *clusterResult) float64 { return r.IngesterBytesPerClusterSeries }},
		{"steady RSS, distributors summed", "MiB", func(r *clusterResult) float64 { return mib(r.role(procs.RoleDistributor).SteadyRSSBytes) }},
		{"steady RSS, all processes", "MiB", func(r *clusterResult) float64 { return mib(r.SteadyRSSBytes) }},
		{"push latency p50", "ms", func(r *clusterResult) float64 { return millis(r.PushP50) }},
		{"push latency p99", "ms", func(r *clusterResult) float64 { return millis(r.PushP99) }},
	}
	if len(results) == 0 {
		return fs
	}
	return append(fs, queryRows(results[0].Queries, " (querier)", func(r *clusterResult) []queryFigures { return r.Queries })...)
}

// printClusterReport writes the workload, each cluster's processes, and the
// figures table with a ratio column of the first two clusters (RF=3 over
// RF=1 by default: the cost of replication).
func printClusterReport(out io.Writer, cfg Config, results []*clusterResult) {
	fmt.Fprintf(out, "cluster mode: %d series x 10 labels, %d series/request, %d senders, %d rounds (%d samples), timestamps %s apart\n",
		cfg.Series, cfg.PerRequest, cfg.Senders, cfg.Rounds, int64(cfg.Series)*int64(cfg.Rounds), cfg.Interval)
	if cfg.Series != singleSeries || cfg.Rounds != singleRounds {
		fmt.Fprintf(out, "  a smaller workload than the single-process comparison (%d series x %d rounds): compare clusters with each other, not with it\n", singleSeries, singleRounds)
	}
	fmt.Fprintf(out, "  every process of a cluster and the generator share this one machine (%d CPUs): a cluster's figures add up the cost of all its processes, not what one machine per process would reach\n", runtime.NumCPU())
	for _, r := range results {
		fmt.Fprintf(out, "%s: %d ingesters (zone-aware: %v), %d distributors, 1 querier, started in %.1fs; %d requests, %d rejected, %d retries, %.1fs pushing, cluster %.1f CPU-s, generator %.1f CPU-s\n",
			r.Target, r.Ingesters, r.ReplicationFactor > 1, r.Distributors, r.StartSeconds, r.Requests, r.RejectedRequests, r.Retries, r.PushSeconds, r.CPUSeconds, r.ClientCPUSeconds)
		if r.FirstError != "" {
			fmt.Fprintf(out, "  first push error: %s\n", r.FirstError)
		}
		for _, n := range r.Nodes {
			fmt.Fprintf(out, "  %-22s %-11s", n.Name, n.Role)
			if n.Role == procs.RoleIngester {
				fmt.Fprintf(out, " %5.1f%% of tokens, %7d active series,", 100*n.Ownership, n.ActiveSeries)
			}
			fmt.Fprintf(out, " %7.1f CPU-s pushing, steady RSS %7.1f MiB, peak %7.1f MiB\n",
				n.CPUSeconds, float64(n.SteadyRSSBytes)/(1<<20), float64(n.PeakRSSBytes)/(1<<20))
		}
		for _, q := range r.Queries {
			fmt.Fprintf(out, "  query %s: %d runs, %d errors, %d result series: %s\n", q.Name, q.Reps, q.Errors, q.Series, q.Query)
			if q.Error != "" {
				fmt.Fprintf(out, "    last error: %s\n", q.Error)
			}
		}
	}
	t := figureTable[*clusterResult]{results: results, figures: clusterFigures(results)}
	for _, r := range results {
		t.columns = append(t.columns, r.Target)
	}
	if len(results) >= 2 {
		t.ratio = []int{0, 1}
	}
	t.print(out)
	fmt.Fprintln(out, "The memory cost of replication is \"ingester RSS, summed, per series pushed\"; \"per active series per ingester\" also spreads each process's fixed baseline over the series it holds, so it favours the ingester holding more.")
}
