package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// rulesNamespace is the namespace every tenant's groups are uploaded to.
const rulesNamespace = "bench"

// RulesConfig is the rule-evaluation run of -mode=rules. The data is -series
// series spread over the tenants, a sample of each every -interval.
type RulesConfig struct {
	Tenants     int           `yaml:"tenants"`
	Count       int           `yaml:"count"`
	GroupSize   int           `yaml:"group_size"`
	Interval    time.Duration `yaml:"interval"`
	Duration    time.Duration `yaml:"duration"`
	Warmup      time.Duration `yaml:"warmup"`
	History     time.Duration `yaml:"history"`
	ScrapeEvery time.Duration `yaml:"scrape_every"`
}

// RegisterFlags registers the rule-evaluation flags: 10,000 recording
// rules over 100 tenants, 10 per group, every 15s.
func (c *RulesConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Tenants, "rules.tenants", 100, "Tenants of -mode=rules; -series is spread over them, each gets -rules.count/-rules.tenants rules.")
	fs.IntVar(&c.Count, "rules.count", 10000, "Recording rules of -mode=rules over all tenants; a multiple of -rules.tenants.")
	fs.IntVar(&c.GroupSize, "rules.group-size", 10, "Rules per rule group (at most 20, the ruler's default limit).")
	fs.DurationVar(&c.Interval, "rules.interval", 15*time.Second, "Evaluation interval of every rule group.")
	fs.DurationVar(&c.Duration, "rules.duration", 2*time.Minute, "Measured time of -mode=rules, after -rules.warmup (at most 1h).")
	fs.DurationVar(&c.Warmup, "rules.warmup", 30*time.Second, "Time between the upload of the rules and the start of the measurement: every group runs its first iteration.")
	fs.DurationVar(&c.History, "rules.history", 6*time.Minute, "Data pushed before the rules start, ending now; the rules' longest range is 5m.")
	fs.DurationVar(&c.ScrapeEvery, "rules.scrape-every", 2*time.Second, "How often the bench reads the server's /metrics for each group's last evaluation time; below -rules.interval so that every start is seen.")
}

// Validate names the first rules flag the bench cannot use.
func (c *RulesConfig) Validate(series int) error {
	switch {
	case c.Tenants < 1:
		return fmt.Errorf("-rules.tenants must be at least 1, got %d", c.Tenants)
	case series < c.Tenants:
		return fmt.Errorf("-series %d is below -rules.tenants %d: every tenant needs series", series, c.Tenants)
	case c.Count < c.Tenants || c.Count%c.Tenants != 0:
		return fmt.Errorf("-rules.count must be a positive multiple of -rules.tenants %d, got %d", c.Tenants, c.Count)
	case c.GroupSize < 1 || c.GroupSize > 20:
		return fmt.Errorf("-rules.group-size must be 1 to 20, got %d", c.GroupSize)
	case c.Interval < time.Second:
		return fmt.Errorf("-rules.interval must be at least 1s, got %s", c.Interval)
	case c.Duration < c.Interval || c.Duration > time.Hour:
		return fmt.Errorf("-rules.duration must be from -rules.interval to 1h, got %s", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("-rules.warmup must not be negative, got %s", c.Warmup)
	case c.History < time.Minute:
		return fmt.Errorf("-rules.history must be at least 1m, got %s", c.History)
	case c.ScrapeEvery <= 0 || c.ScrapeEvery >= c.Interval:
		return fmt.Errorf("-rules.scrape-every must be positive and below -rules.interval %s, got %s", c.Interval, c.ScrapeEvery)
	}
	return nil
}

func (c *RulesConfig) perTenant() int { return c.Count / c.Tenants }

func rulesTenant(t int) string { return fmt.Sprintf("tenant-%03d", t) }

// rulesFeed is the data of every tenant: tenant t's series are
// [t*series/tenants, (t+1)*series/tenants) of the standard data set, each
// with bench_tenant=<tenant>.
type rulesFeed struct {
	tenants []string
	loads   []*workload
	senders int
	client  *http.Client
}

func newRulesFeed(cfg Config, baseTS int64, rounds int) (*rulesFeed, error) {
	f := &rulesFeed{senders: cfg.Senders, client: newPusher(nil, cfg.Senders).client}
	n := cfg.Rules.Tenants
	for t := range n {
		name := rulesTenant(t)
		first, last := t*cfg.Series/n, (t+1)*cfg.Series/n
		w := &workload{rounds: rounds, interval: cfg.Interval, series: last - first, baseTS: baseTS}
		if err := checkTimestamps(w.baseTS, w.lastTS()); err != nil {
			return nil, err
		}
		for s := first; s < last; s += cfg.PerRequest {
			w.batches = append(w.batches, newBatch(s, min(cfg.PerRequest, last-s), [2]string{rulesTenantLabel, name}))
		}
		f.tenants = append(f.tenants, name)
		f.loads = append(f.loads, w)
	}
	return f, nil
}

// feedResult counts the feed's pushes.
type feedResult struct {
	Requests, Rejected int
	FirstError         string `json:",omitempty"`
}

// pushRound sends round r of every tenant to url, each with its
// X-Scope-OrgID, -senders at a time, and returns when all were answered.
func (f *rulesFeed) pushRound(ctx context.Context, url string, r int, res *feedResult) {
	type job struct{ t, b int }
	jobs := make(chan job)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range f.senders {
		wg.Go(func() {
			var buf []byte
			for j := range jobs {
				w := f.loads[j.t]
				p := &pusher{urls: []string{url}, client: f.client, retries: 10, tenant: f.tenants[j.t]}
				body := w.body(r*len(w.batches)+j.b, &buf)
				_, _, err := p.send(ctx, url, body)
				if ctx.Err() != nil {
					continue // cut off by the end of the run: not an answer
				}
				mu.Lock()
				res.Requests++
				if err != nil {
					res.Rejected++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	for t, w := range f.loads {
		for b := range w.batches {
			select {
			case jobs <- job{t, b}:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// rulesTarget is a started server of -mode=rules.
type rulesTarget struct {
	name    string
	pushURL string
	baseURL string
	proc    *procs.Process
	names   ruleMetricNames
}

// ruleMetricNames are the self-metrics a server counts its rule
// evaluation in.
type ruleMetricNames struct {
	evaluations, failures, iterations, missed, duration, lastEval string
	groupKey                                                      []string // labels naming a group in lastEval
}

var (
	strataRuleMetrics = ruleMetricNames{
		evaluations: "strata_ruler_rule_evaluations_total",
		failures:    "strata_ruler_rule_evaluation_failures_total",
		iterations:  "strata_ruler_group_iterations_total",
		missed:      "strata_ruler_group_iterations_missed_total",
		duration:    "strata_ruler_group_evaluation_duration_seconds",
		lastEval:    "strata_ruler_group_last_evaluation_timestamp_seconds",
		groupKey:    []string{"tenant", "rule_group"},
	}
	prometheusRuleMetrics = ruleMetricNames{
		evaluations: "prometheus_rule_evaluations_total",
		failures:    "prometheus_rule_evaluation_failures_total",
		iterations:  "prometheus_rule_group_iterations_total",
		missed:      "prometheus_rule_group_iterations_missed_total",
		duration:    "prometheus_rule_group_duration_seconds",
		lastEval:    "prometheus_rule_group_last_evaluation_timestamp_seconds",
		groupKey:    []string{"rule_group"},
	}
)

// runRules measures each of -targets in turn: start it, push the history,
// load the rules, keep feeding in real time, measure, stop.
func runRules(ctx context.Context, cfg Config, dir string, log *slog.Logger, out io.Writer) error {
	results, err := eachTarget(cfg, dir, "bench rules on", func(t, sub string) (*rulesResult, error) {
		return benchRules(ctx, cfg, t, sub, log)
	})
	if err != nil {
		return err
	}
	printRulesReport(out, cfg, results)
	if err := writeJSON(cfg.JSONOut, results); err != nil {
		return err
	}
	for _, r := range results {
		if r.Feed.Rejected > 0 {
			return fmt.Errorf("%s: %d of %d data pushes failed: %s", r.Target, r.Feed.Rejected, r.Feed.Requests, r.Feed.FirstError)
		}
	}
	return nil
}

func startRulesTarget(ctx context.Context, cfg Config, target, dir string) (*rulesTarget, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch target {
	case "strata":
		bin, err := cfg.strataBin(dir)
		if err != nil {
			return nil, err
		}
		groups := cfg.Rules.perTenant()/cfg.Rules.GroupSize + 1
		args := []string{
			"-auth.multitenancy-enabled",
			"-metrics.max-tenant-labels=" + strconv.Itoa(max(1000, cfg.Rules.Tenants)),
			// The feed is far under any sane limit in steady state, but
			// the history arrives at once.
			"-distributor.ingestion-rate-limit=100000000",
			"-distributor.ingestion-burst-size=100000000",
			"-ruler.max-rule-groups-per-tenant=" + strconv.Itoa(max(70, groups)),
		}
		s, err := procs.StartStrata(ctx, dir, procs.StrataConfig{Bin: bin, Args: append(args, strings.Fields(cfg.StrataArgs)...)})
		if err != nil {
			return nil, err
		}
		return &rulesTarget{name: target, pushURL: s.URL + "/api/v1/push", baseURL: s.URL, proc: s.Process(), names: strataRuleMetrics}, nil
	case "prometheus":
		return startRulesPrometheus(ctx, cfg, dir)
	}
	return nil, fmt.Errorf("unknown target %q", target)
}

// startRulesPrometheus starts Debian's prometheus with the remote-write
// receiver on and every tenant's groups in one rule file, rules.yml.
// procs.StartPrometheus has no rule files, so the config is written here.
func startRulesPrometheus(ctx context.Context, cfg Config, dir string) (*rulesTarget, error) {
	bin := cfg.PrometheusBin
	if bin == "" {
		var err error
		if bin, err = procs.LookPath("prometheus", "prometheus"); err != nil {
			return nil, err
		}
	}
	var rf ruleFile
	for t := range cfg.Rules.Tenants {
		rf.Groups = append(rf.Groups, tenantRuleGroups(rulesTenant(t), cfg.Rules.perTenant(), cfg.Rules.GroupSize, cfg.Rules.Interval)...)
	}
	b, err := marshalRuleFile(rf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), b, 0o644); err != nil {
		return nil, fmt.Errorf("write rule file: %w", err)
	}
	// Rules load only with the config: the file is written now and named
	// in the config only when the history is in (loadRules reloads).
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), prometheusRulesYAML(cfg, false), 0o644); err != nil {
		return nil, fmt.Errorf("write prometheus config: %w", err)
	}
	addr, err := procs.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := procs.Start(procs.Spec{Name: "prometheus", Path: bin, Dir: dir, Args: []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
		"--web.enable-lifecycle",
	}})
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	if err := procs.WaitHTTP(ctx, p, url+"/-/ready"); err != nil {
		p.Kill()
		return nil, err
	}
	return &rulesTarget{name: "prometheus", pushURL: url + "/api/v1/write", baseURL: url, proc: p, names: prometheusRuleMetrics}, nil
}

func prometheusRulesYAML(cfg Config, withRules bool) []byte {
	s := fmt.Sprintf("global:\n  evaluation_interval: %s\n", promDuration(cfg.Rules.Interval))
	if withRules {
		s += "rule_files:\n  - rules.yml\n"
	}
	return []byte(s)
}

// loadRules hands the rules to the target: one POST per group to Strata's
// rule config API with the group's tenant, or the config with rules.yml
// and a reload to Prometheus.
func (rt *rulesTarget) loadRules(ctx context.Context, cfg Config, dir string) error {
	client := &http.Client{Timeout: time.Minute}
	do := func(req *http.Request) error {
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(msg))
		}
		return nil
	}
	if rt.name == "prometheus" {
		if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), prometheusRulesYAML(cfg, true), 0o644); err != nil {
			return fmt.Errorf("write prometheus config: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.baseURL+"/-/reload", nil)
		if err != nil {
			return fmt.Errorf("build reload request: %w", err)
		}
		if err := do(req); err != nil {
			return fmt.Errorf("reload prometheus with the rules: %w", err)
		}
		return nil
	}
	for t := range cfg.Rules.Tenants {
		tenant := rulesTenant(t)
		for _, g := range tenantRuleGroups(tenant, cfg.Rules.perTenant(), cfg.Rules.GroupSize, cfg.Rules.Interval) {
			body, err := marshalRuleFile(g)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.baseURL+"/config/v1/rules/"+rulesNamespace, bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("build rule upload: %w", err)
			}
			req.Header.Set("Content-Type", "application/yaml")
			req.Header.Set("X-Scope-OrgID", tenant)
			if err := do(req); err != nil {
				return fmt.Errorf("upload rule group %s: %w", g.Name, err)
			}
		}
	}
	return nil
}

// benchRules measures one target.
func benchRules(ctx context.Context, cfg Config, target, dir string, log *slog.Logger) (*rulesResult, error) {
	rc := cfg.Rules
	history := int(rc.History/cfg.Interval) + 1
	// A margin of rounds for loading the rules and the last scrapes.
	live := int((rc.Warmup+rc.Duration)/cfg.Interval) + 4
	now := time.Now()
	feed, err := newRulesFeed(cfg, baseTimestamp(now, history, cfg.Interval), history+live)
	if err != nil {
		return nil, err
	}
	rt, err := startRulesTarget(ctx, cfg, target, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := rt.proc.Stop(30 * time.Second); err != nil {
			log.Warn("stop server", "target", target, "err", err)
		}
	}()
	log.Info("pushing history", "target", target, "pid", rt.proc.PID(), "series", cfg.Series, "tenants", rc.Tenants, "rounds", history)
	var fr feedResult
	for r := range history {
		feed.pushRound(ctx, rt.pushURL, r, &fr)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if fr.Rejected > 0 {
		return nil, fmt.Errorf("history: %d of %d pushes failed: %s", fr.Rejected, fr.Requests, fr.FirstError)
	}
	uData, err := rt.proc.Usage()
	if err != nil {
		return nil, err
	}
	// The live feed: round r at its own timestamp, in real time, until
	// the measurement ends.
	fctx, stopFeed := context.WithCancel(ctx)
	var feedDone sync.WaitGroup
	feedDone.Go(func() {
		for r := history; r < history+live; r++ {
			if err := wait(fctx, time.Until(time.UnixMilli(feed.loads[0].ts(r)))); err != nil {
				return
			}
			feed.pushRound(fctx, rt.pushURL, r, &fr)
		}
	})
	defer func() {
		stopFeed()
		feedDone.Wait()
	}()

	log.Info("loading rules", "target", target, "rules", rc.Count, "groups", rc.Tenants*((rc.perTenant()+rc.GroupSize-1)/rc.GroupSize))
	if err := rt.loadRules(ctx, cfg, dir); err != nil {
		return nil, err
	}
	if err := wait(ctx, rc.Warmup); err != nil {
		return nil, err
	}
	log.Info("measuring", "target", target, "duration", rc.Duration)
	client := &http.Client{Timeout: 30 * time.Second}
	first, err := scrapeRuleMetrics(ctx, client, rt.baseURL, rt.names)
	if err != nil {
		return nil, err
	}
	u0, err := rt.proc.Usage()
	if err != nil {
		return nil, err
	}
	self0, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	starts := map[string][]float64{}
	first.addStarts(starts)
	last := first
	for time.Since(t0) < rc.Duration {
		if err := wait(ctx, min(rc.ScrapeEvery, rc.Duration-time.Since(t0))); err != nil {
			return nil, err
		}
		s, err := scrapeRuleMetrics(ctx, client, rt.baseURL, rt.names)
		if err != nil {
			return nil, err
		}
		s.addStarts(starts)
		last = s
	}
	seconds := time.Since(t0).Seconds()
	u1, err := rt.proc.Usage()
	if err != nil {
		return nil, err
	}
	self1, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	stopFeed()
	feedDone.Wait()
	res := newRulesResult(target, rc, seconds, first, last, starts)
	res.CPUSeconds = u1.CPUSeconds - u0.CPUSeconds
	res.PeakRSSBytes = max(u1.PeakRSSBytes, u1.RSSBytes) // VmHWM is updated lazily
	res.RSSBeforeRulesBytes, res.RSSEndBytes = uData.RSSBytes, u1.RSSBytes
	res.GeneratorCPUSeconds = self1.CPUSeconds - self0.CPUSeconds
	res.Feed = fr
	if res.RecordedSeries, err = recordedSeries(ctx, client, rt.baseURL, rulesTenant(0)); err != nil {
		return nil, err
	}
	log.Info("measured", "target", target, "evaluations", res.Evaluations, "failures", res.Failures, "missed", res.Missed, "p99_delay", res.DelayP99)
	return res, nil
}
