package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// The default workload of -mode=cluster: the same as the single-process
// comparison. Measured on 2 cores beside other work, both clusters (RF=3,
// then RF=1) take about 9 minutes with it, so the whole `make bench` stays
// near 18. A smaller -series or -rounds is said so in the report.
const (
	clusterSeries = 100000
	clusterRounds = 250
)

// ClusterConfig is the shape of the clusters -mode=cluster measures.
type ClusterConfig struct {
	ReplicationFactors string        `yaml:"replication_factors"`
	Ingesters          int           `yaml:"ingesters"`
	Distributors       int           `yaml:"distributors"`
	Args               string        `yaml:"args"`
	StartTimeout       time.Duration `yaml:"start_timeout"`
}

// RegisterFlags registers the cluster flags: 3 ingesters, 2 distributors, 1
// querier, measured at RF=3 (zone-aware, one zone per ingester) and RF=1.
func (c *ClusterConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ReplicationFactors, "cluster.replication-factors", "3,1", "Comma-separated replication factors; one cluster is started and measured for each, in order (zone-aware with one zone per ingester when above 1). The first two are compared as a ratio.")
	fs.IntVar(&c.Ingesters, "cluster.ingesters", 3, "Ingesters of each cluster.")
	fs.IntVar(&c.Distributors, "cluster.distributors", 2, "Distributors of each cluster; pushes take turns among them.")
	fs.StringVar(&c.Args, "cluster.args", "", "Extra space-separated flags for every cluster process.")
	fs.DurationVar(&c.StartTimeout, "cluster.start-timeout", 2*time.Minute, "Most time a cluster may take to start.")
}

// Validate names the first cluster flag the bench cannot use.
func (c *ClusterConfig) Validate() error {
	rfs, err := c.replicationFactors()
	if err != nil {
		return err
	}
	switch {
	case c.Ingesters < 1 || c.Ingesters > 26:
		return fmt.Errorf("-cluster.ingesters must be 1 to 26, got %d", c.Ingesters)
	case c.Distributors < 1:
		return fmt.Errorf("-cluster.distributors must be at least 1, got %d", c.Distributors)
	}
	for _, rf := range rfs {
		if rf > c.Ingesters {
			return fmt.Errorf("-cluster.replication-factors: %d copies need at least %d ingesters (-cluster.ingesters=%d)", rf, rf, c.Ingesters)
		}
	}
	return nil
}

func (c *ClusterConfig) replicationFactors() ([]int, error) {
	var rfs []int
	for _, f := range strings.Split(c.ReplicationFactors, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		rf, err := strconv.Atoi(f)
		if err != nil || rf < 1 {
			return nil, fmt.Errorf("-cluster.replication-factors: %q is not a positive integer", f)
		}
		rfs = append(rfs, rf)
	}
	if len(rfs) == 0 {
		return nil, fmt.Errorf("-cluster.replication-factors: none given")
	}
	return rfs, nil
}

// benchCluster is a started cluster: every node and its current process.
type benchCluster struct {
	nodes []*benchNode
}

type benchNode struct {
	procs.NodeSpec
	proc *procs.Process
}

// startCluster starts a cluster of cfg at replication factor rf in dir: the
// ingesters one after another, each waited for until /ready (an ingester
// picks its tokens against the ring it sees, so ingesters joining at once
// would split the same ranges), then the distributors and the querier, and
// finally waits until every distributor and querier sees every ingester
// ACTIVE. On error nothing is left running.
func startCluster(ctx context.Context, bin, dir string, cfg ClusterConfig, rf int) (*benchCluster, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	zones := 1
	if rf > 1 {
		zones = min(cfg.Ingesters, 26)
	}
	specs, err := procs.PlanCluster(procs.ClusterConfig{
		Bin: bin, Dir: dir,
		Ingesters: cfg.Ingesters, Zones: zones, Distributors: cfg.Distributors, Queriers: 1,
		ReplicationFactor: rf,
		ClusterLabel:      "strata-bench-rf" + strconv.Itoa(rf),
		Args:              strings.Fields(cfg.Args),
	}, procs.FreeAddr)
	if err != nil {
		return nil, err
	}
	c := &benchCluster{}
	for _, s := range specs {
		c.nodes = append(c.nodes, &benchNode{NodeSpec: s})
	}
	start := func(n *benchNode) error {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return fmt.Errorf("make data dir of %s: %w", n.Name, err)
		}
		p, err := procs.Start(procs.Spec{Name: n.Name, Path: bin, Args: n.Args, Dir: dir})
		if err != nil {
			return err
		}
		n.proc = p
		return nil
	}
	fail := func(err error) (*benchCluster, error) {
		c.kill()
		return nil, fmt.Errorf("start cluster rf=%d: %w", rf, err)
	}
	for _, n := range c.byRole(procs.RoleIngester) {
		if err := start(n); err != nil {
			return fail(err)
		}
		if err := procs.WaitHTTP(ctx, n.proc, n.URL()+"/ready"); err != nil {
			return fail(err)
		}
	}
	rest := append(c.byRole(procs.RoleDistributor), c.byRole(procs.RoleQuerier)...)
	for _, n := range rest {
		if err := start(n); err != nil {
			return fail(err)
		}
	}
	for _, n := range rest {
		if err := procs.WaitHTTP(ctx, n.proc, n.URL()+"/ready"); err != nil {
			return fail(err)
		}
	}
	ingesters := c.byRole(procs.RoleIngester)
	for _, n := range rest {
		err := procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) {
			r, err := procs.FetchRing(ctx, n.URL())
			if err != nil {
				return false, err.Error()
			}
			for _, in := range ingesters {
				if ok, reason := procs.InstanceIs(in.Name, "ACTIVE", true)(r); !ok {
					return false, n.Name + ": " + reason
				}
			}
			return true, ""
		})
		if err != nil {
			return fail(err)
		}
	}
	return c, nil
}

func (c *benchCluster) byRole(role procs.Role) []*benchNode {
	var out []*benchNode
	for _, n := range c.nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// running returns the nodes that were started.
func (c *benchCluster) running() []*benchNode {
	var out []*benchNode
	for _, n := range c.nodes {
		if n.proc != nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *benchCluster) kill() {
	for _, n := range c.running() {
		_ = n.proc.Kill()
	}
}

// stop stops the querier and the distributors, then the ingesters, each
// group at once, with SIGTERM and grace before SIGKILL.
func (c *benchCluster) stop(grace time.Duration) []error {
	var (
		mu   sync.Mutex
		errs []error
	)
	for _, group := range [][]*benchNode{
		append(c.byRole(procs.RoleQuerier), c.byRole(procs.RoleDistributor)...),
		c.byRole(procs.RoleIngester),
	} {
		var wg sync.WaitGroup
		for _, n := range group {
			if n.proc == nil {
				continue
			}
			wg.Go(func() {
				if err := n.proc.Stop(grace); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errs
}

// activeSeries sums strata_ingester_active_series over tenants from an
// ingester's /metrics.
func activeSeries(ctx context.Context, client *http.Client, baseURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("build metrics request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("get %s/metrics: %w", baseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("get %s/metrics: status %d", baseURL, resp.StatusCode)
	}
	return sumMetric(resp.Body, "strata_ingester_active_series")
}

// sumMetric adds up every sample of the metric name in a text exposition;
// 0 when there is none.
func sumMetric(r io.Reader, name string) (int64, error) {
	var (
		sum   float64
		found bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("parse %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("parse %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	if !found {
		return 0, nil // an ingester that holds no series has no tenant yet
	}
	return int64(sum), nil
}
