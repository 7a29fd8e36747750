package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// runCluster measures one cluster per -cluster.replication-factors, one
// after another, and prints them side by side.
func runCluster(ctx context.Context, cfg Config, dir string, log *slog.Logger, out io.Writer) error {
	rfs, err := cfg.Cluster.replicationFactors()
	if err != nil {
		return err
	}
	bin, err := cfg.strataBin(dir)
	if err != nil {
		return err
	}
	var results []*clusterResult
	for _, rf := range rfs {
		sub, err := os.MkdirTemp(dir, "cluster-rf"+strconv.Itoa(rf)+"-")
		if err != nil {
			return fmt.Errorf("make work dir for rf=%d: %w", rf, err)
		}
		r, err := benchClusterAt(ctx, cfg, bin, rf, sub, log)
		if err != nil {
			return fmt.Errorf("bench cluster rf=%d: %w", rf, err)
		}
		results = append(results, r)
		if !cfg.Keep {
			os.RemoveAll(sub) // the next cluster's disk and page cache start clean
		}
	}
	printClusterReport(out, cfg, results)
	return writeJSON(cfg.JSONOut, results)
}

// clusterResult is every figure of one cluster.
type clusterResult struct {
	Target            string
	ReplicationFactor int
	Ingesters         int
	Distributors      int
	Series            int
	StartSeconds      float64 // ingesters one by one, then the rest, until all see the ring
	Requests          int
	RejectedRequests  int
	Retries           int
	FirstError        string `json:",omitempty"`
	SamplesAccepted   int64
	PushSeconds       float64
	SamplesPerSecond  float64 // accepted at the distributors
	CPUSeconds        float64 // every process of the cluster, during the push
	CPUSecondsPerMSmp float64
	ClientCPUSeconds  float64
	SteadyRSSBytes    int64 // every process of the cluster
	// IngesterBytesPerSeries is the mean over ingesters of steady RSS over
	// the active series it holds.
	IngesterBytesPerSeries float64
	// IngesterBytesPerClusterSeries is the ingesters' steady RSS summed,
	// over the series pushed: what one series costs the cluster with its
	// replicas.
	IngesterBytesPerClusterSeries float64
	PushP50, PushP99              time.Duration
	Roles                         []roleFigures
	Nodes                         []nodeFigures
	Queries                       []queryFigures
}

// roleFigures sums the processes of one role.
type roleFigures struct {
	Role              procs.Role
	Processes         int
	CPUSeconds        float64 // during the push
	CPUSecondsPerMSmp float64
	SteadyRSSBytes    int64 // sum
	PeakRSSBytes      int64 // sum of each process's peak
}

// nodeFigures are one process's.
type nodeFigures struct {
	Name           string
	Role           procs.Role
	Zone           string  `json:",omitempty"`
	Ownership      float64 `json:",omitempty"` // share of the ring's tokens (ingesters)
	ActiveSeries   int64   `json:",omitempty"` // ingesters
	CPUSeconds     float64 // during the push
	SteadyRSSBytes int64
	PeakRSSBytes   int64
	BytesPerSeries float64 `json:",omitempty"` // ingesters: steady RSS / active series
}

// benchClusterAt starts a cluster at rf, pushes the workload taking turns
// among the distributors, lets it settle, reads every process's memory and
// the ingesters' active series, replays the dashboard on the querier and
// stops the cluster.
func benchClusterAt(ctx context.Context, cfg Config, bin string, rf int, dir string, log *slog.Logger) (*clusterResult, error) {
	target := "cluster-rf" + strconv.Itoa(rf)
	w, err := buildWorkload(cfg, log)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	c, err := startCluster(ctx, bin, filepath.Clean(dir), cfg.Cluster, rf)
	if err != nil {
		return nil, err
	}
	started := time.Since(t0)
	defer func() {
		for _, err := range c.stop(30 * time.Second) {
			log.Warn("stop cluster process", "target", target, "err", err)
		}
	}()
	nodes := c.running()
	figs := make([]nodeFigures, len(nodes))
	for i, n := range nodes {
		figs[i] = nodeFigures{Name: n.Name, Role: n.Role, Zone: n.Zone}
	}
	dists := c.byRole(procs.RoleDistributor)
	if ring, err := procs.FetchRing(ctx, dists[0].URL()); err != nil {
		log.Warn("read token shares", "err", err)
	} else {
		for i := range figs {
			if in, ok := ring.Instance(figs[i].Name); ok {
				figs[i].Ownership = in.Ownership
			}
		}
	}
	var urls []string
	for _, d := range dists {
		urls = append(urls, d.URL()+"/api/v1/push")
	}
	log.Info("pushing", "target", target, "started_in", started.Round(time.Millisecond), "series", cfg.Series, "rounds", cfg.Rounds, "requests", w.requests(), "distributors", len(urls))

	before, err := usages(nodes)
	if err != nil {
		return nil, err
	}
	self0, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	push, err := newPusher(urls, cfg.Senders).run(pctx, w)
	cancel()
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	if err != nil {
		log.Warn("push phase cut short; figures cover what was sent", "target", target, "err", err)
	}
	after, err := usages(nodes)
	if err != nil {
		return nil, err
	}
	self1, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	log.Info("pushed", "target", target, "accepted", push.Accepted, "rejected", push.Rejected, "wall", push.Wall.Round(time.Millisecond), "first_error", push.FirstError)
	for i := range figs {
		figs[i].CPUSeconds = after[i].CPUSeconds - before[i].CPUSeconds
	}

	if err := wait(ctx, cfg.Settle); err != nil {
		return nil, err
	}
	rss := make([][]int64, len(nodes))
	for k := range cfg.RSSReadings {
		if k > 0 {
			if err := wait(ctx, cfg.RSSEvery); err != nil {
				return nil, err
			}
		}
		us, err := usages(nodes)
		if err != nil {
			return nil, err
		}
		for i, u := range us {
			rss[i] = append(rss[i], u.RSSBytes)
			// VmHWM is updated lazily: never below a reading of VmRSS.
			figs[i].PeakRSSBytes = max(u.PeakRSSBytes, slices.Max(rss[i]))
		}
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	for i, n := range nodes {
		figs[i].SteadyRSSBytes = median(rss[i])
		if n.Role != procs.RoleIngester {
			continue
		}
		s, err := activeSeries(ctx, client, n.URL())
		if err != nil {
			return nil, err
		}
		figs[i].ActiveSeries = s
		if s > 0 {
			figs[i].BytesPerSeries = float64(figs[i].SteadyRSSBytes) / float64(s)
		}
	}

	log.Info("querying", "target", target)
	querier := c.byRole(procs.RoleQuerier)[0]
	qs := runQueries(ctx, client, querier.URL(), dashboardQueries(cfg.QueryReps), time.UnixMilli(w.lastTS()), cfg.QueryRange, cfg.QueryStep)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r := newClusterResult(target, cfg, rf, push, figs, self1.CPUSeconds-self0.CPUSeconds, qs)
	r.StartSeconds = started.Seconds()
	return r, nil
}

// usages reads every node's CPU and memory, in order.
func usages(nodes []*benchNode) ([]procs.Usage, error) {
	out := make([]procs.Usage, len(nodes))
	for i, n := range nodes {
		u, err := n.proc.Usage()
		if err != nil {
			return nil, fmt.Errorf("usage of %s: %w", n.Name, err)
		}
		out[i] = u
	}
	return out, nil
}

// newClusterResult adds up the nodes' figures by role and for the cluster.
func newClusterResult(target string, cfg Config, rf int, push pushResult, nodes []nodeFigures, clientCPU float64, qs []queryResult) *clusterResult {
	r := &clusterResult{
		Target:            target,
		ReplicationFactor: rf,
		Series:            cfg.Series,
		Requests:          push.Requests,
		RejectedRequests:  push.Rejected,
		Retries:           push.Retries,
		FirstError:        push.FirstError,
		SamplesAccepted:   push.SamplesAccepted,
		PushSeconds:       push.Wall.Seconds(),
		ClientCPUSeconds:  clientCPU,
		Nodes:             nodes,
		Queries:           newQueryFigures(cfg, qs),
	}
	perM := func(cpu float64) float64 {
		if push.SamplesAccepted == 0 {
			return 0
		}
		return cpu / float64(push.SamplesAccepted) * 1e6
	}
	if push.Wall > 0 {
		r.SamplesPerSecond = float64(push.SamplesAccepted) / push.Wall.Seconds()
	}
	var ingesterRSS int64
	var perSeries []float64
	for _, role := range []procs.Role{procs.RoleDistributor, procs.RoleIngester, procs.RoleQuerier} {
		f := roleFigures{Role: role}
		for _, n := range nodes {
			if n.Role != role {
				continue
			}
			f.Processes++
			f.CPUSeconds += n.CPUSeconds
			f.SteadyRSSBytes += n.SteadyRSSBytes
			f.PeakRSSBytes += n.PeakRSSBytes
			if role == procs.RoleIngester {
				ingesterRSS += n.SteadyRSSBytes
				if n.ActiveSeries > 0 {
					perSeries = append(perSeries, n.BytesPerSeries)
				}
			}
		}
		f.CPUSecondsPerMSmp = perM(f.CPUSeconds)
		r.CPUSeconds += f.CPUSeconds
		r.SteadyRSSBytes += f.SteadyRSSBytes
		switch role {
		case procs.RoleDistributor:
			r.Distributors = f.Processes
		case procs.RoleIngester:
			r.Ingesters = f.Processes
		}
		r.Roles = append(r.Roles, f)
	}
	r.CPUSecondsPerMSmp = perM(r.CPUSeconds)
	for _, b := range perSeries {
		r.IngesterBytesPerSeries += b / float64(len(perSeries))
	}
	if cfg.Series > 0 {
		r.IngesterBytesPerClusterSeries = float64(ingesterRSS) / float64(cfg.Series)
	}
	r.PushP50, r.PushP99 = percentile(push.Latencies, 0.50), percentile(push.Latencies, 0.99)
	return r
}

func (r *clusterResult) role(role procs.Role) roleFigures {
	for _, f := range r.Roles {
		if f.Role == role {
			return f
		}
	}
	return roleFigures{Role: role}
}
