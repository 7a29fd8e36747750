package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// Config is the whole bench: the servers to measure and the load.
type Config struct {
	Mode          string         `yaml:"mode"`
	Targets       string         `yaml:"targets"`
	StrataBin     string         `yaml:"strata_bin"`
	StrataArgs    string         `yaml:"strata_args"`
	PrometheusBin string         `yaml:"prometheus_bin"`
	Series        int            `yaml:"series"`
	PerRequest    int            `yaml:"series_per_request"`
	Senders       int            `yaml:"senders"`
	Rounds        int            `yaml:"rounds"`
	Interval      time.Duration  `yaml:"interval"`
	Timeout       time.Duration  `yaml:"timeout"`
	Settle        time.Duration  `yaml:"settle"`
	RSSReadings   int            `yaml:"rss_readings"`
	RSSEvery      time.Duration  `yaml:"rss_every"`
	QueryReps     int            `yaml:"query_reps"`
	QueryRange    time.Duration  `yaml:"query_range"`
	QueryStep     time.Duration  `yaml:"query_step"`
	WorkDir       string         `yaml:"work_dir"`
	Keep          bool           `yaml:"keep"`
	PrebuildMaxMB int            `yaml:"prebuild_max_mb"`
	JSONOut       string         `yaml:"json_out"`
	Cluster       ClusterConfig  `yaml:"cluster"`
	Noisy         NoisyConfig    `yaml:"noisy"`
	Longterm      LongtermConfig `yaml:"longterm"`
	Rules         RulesConfig    `yaml:"rules"`
}

// RegisterFlags registers the bench's flags with the standard workload (100,000 series of 10 labels) as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "mode", "single", "single: one-process servers of -targets side by side; cluster: a multi-process Strata cluster at each of -cluster.replication-factors, side by side; noisy: tenant B pushing alone, then while tenant A floods far over its rate limit (-noisy.*); longterm: bytes per sample in the bucket after compaction and 7-day query latency through the store-gateway, cold and warm (-longterm.*); rules: recording-rule evaluation over many tenants, strata's ruler and Prometheus side by side (-rules.*); backfill: strata backfill's upload throughput (MB/s, samples/s, CPU per million samples) of 12 2h blocks of -series series into strata -target=all (-strata.args picks the bucket).")
	fs.StringVar(&c.Targets, "targets", "strata,prometheus", "Comma-separated servers to measure, in order: strata, prometheus.")
	fs.StringVar(&c.StrataBin, "strata.bin", "", "The strata binary; empty builds ./cmd/strata into the work dir ($STRATA_BIN wins).")
	fs.StringVar(&c.StrataArgs, "strata.args", "", "Extra space-separated flags for strata.")
	fs.StringVar(&c.PrometheusBin, "prometheus.bin", "", "The prometheus binary; empty finds it on $PATH.")
	fs.IntVar(&c.Series, "series", 0, fmt.Sprintf("Active series (of tenant B with -mode=noisy); 0 means %d with -mode=single, %d with -mode=cluster and %d with -mode=noisy (-mode=rules: the single default, spread over -rules.tenants); with -mode=longterm it overrides -longterm.series.", singleSeries, clusterSeries, noisySeries))
	fs.IntVar(&c.PerRequest, "series-per-request", 2000, "Series per remote-write request.")
	fs.IntVar(&c.Senders, "senders", 8, "Concurrent senders (with -mode=noisy: tenant B's pushes in flight at most).")
	fs.IntVar(&c.Rounds, "rounds", 0, fmt.Sprintf("Rounds, each sends one sample of every series (with -mode=noisy: per phase); 0 means %d with -mode=single, %d with -mode=cluster and %d with -mode=noisy.", singleRounds, clusterRounds, noisyRounds))
	fs.DurationVar(&c.Interval, "interval", 15*time.Second, "Timestamp step between rounds (the simulated scrape interval); -mode=noisy paces in real time at -noisy.interval instead.")
	fs.DurationVar(&c.Timeout, "timeout", 20*time.Minute, "Most time one server's push phase may take.")
	fs.DurationVar(&c.Settle, "settle", 15*time.Second, "Pause after the push before reading steady RSS.")
	fs.IntVar(&c.RSSReadings, "rss-readings", 5, "Steady RSS readings; the median is reported.")
	fs.DurationVar(&c.RSSEvery, "rss-every", 2*time.Second, "Time between steady RSS readings.")
	fs.IntVar(&c.QueryReps, "query-reps", 5, "Repetitions of the all-series query (the single-series one runs 4x as often).")
	fs.DurationVar(&c.QueryRange, "query-range", time.Hour, "Range of the dashboard queries, ending at the last round.")
	fs.DurationVar(&c.QueryStep, "query-step", 15*time.Second, "Step of the dashboard queries.")
	fs.StringVar(&c.WorkDir, "work-dir", "", "Directory for data and logs; empty makes a temporary one.")
	fs.BoolVar(&c.Keep, "keep", false, "Keep the work dir (data and server logs) after the run.")
	fs.IntVar(&c.PrebuildMaxMB, "prebuild-max-mb", 4096, "Compress every request body before the push when they fit in this many MiB; otherwise each sender compresses its next body just before sending it.")
	fs.StringVar(&c.JSONOut, "json-out", "", "Also write the results as JSON to this file.")
	c.Cluster.RegisterFlags(fs)
	c.Noisy.RegisterFlags(fs)
	c.Longterm.RegisterFlags(fs)
	c.Rules.RegisterFlags(fs)
}

// The standard workload (single) and the default of cluster mode; see
// clusterSeries for why they differ.
const (
	singleSeries = 100000
	singleRounds = 250
)

// withModeDefaults returns c with -series and -rounds of 0 replaced by the
// mode's workload.
func (c Config) withModeDefaults() Config {
	series, rounds := singleSeries, singleRounds
	switch c.Mode {
	case "cluster":
		series, rounds = clusterSeries, clusterRounds
	case "noisy":
		series, rounds = noisySeries, noisyRounds
	case "longterm":
		// -series, when given, sizes the query data set, as in the other
		// modes (make bench passes one BENCH_FLAGS to every mode); rounds
		// follow from -longterm.span and -longterm.interval.
		if c.Series != 0 {
			c.Longterm.Series = c.Series
		}
		series, rounds = c.Longterm.Series, 1
		c.Rounds = 0
	case "backfill":
		series, rounds = backfillSeries, 1
	case "rules":
		// The standard data set; rounds follow from -rules.history and
		// -rules.duration.
		rounds = 1
	}
	if c.Series == 0 {
		c.Series = series
	}
	if c.Rounds == 0 {
		c.Rounds = rounds
	}
	return c
}

// Validate names the first flag with a value the bench cannot use.
func (c *Config) Validate() error {
	switch {
	case c.Series < 1:
		return fmt.Errorf("-series must be at least 1, got %d", c.Series)
	case c.PerRequest < 1:
		return fmt.Errorf("-series-per-request must be at least 1, got %d", c.PerRequest)
	case c.Senders < 1:
		return fmt.Errorf("-senders must be at least 1, got %d", c.Senders)
	case c.Rounds < 1:
		return fmt.Errorf("-rounds must be at least 1, got %d", c.Rounds)
	case c.Interval < time.Millisecond:
		return fmt.Errorf("-interval must be at least 1ms, got %s", c.Interval)
	case c.QueryStep < time.Second:
		return fmt.Errorf("-query-step must be at least 1s, got %s", c.QueryStep)
	case c.RSSReadings < 1:
		return fmt.Errorf("-rss-readings must be at least 1, got %d", c.RSSReadings)
	}
	switch c.Mode {
	case "single":
		for _, t := range c.targets() {
			if t != "strata" && t != "prometheus" {
				return fmt.Errorf("-targets: unknown server %q (strata, prometheus)", t)
			}
		}
	case "cluster":
		return c.Cluster.Validate()
	case "longterm":
		return c.Longterm.Validate()
	case "rules":
		for _, t := range c.targets() {
			if t != "strata" && t != "prometheus" {
				return fmt.Errorf("-targets: unknown server %q (strata, prometheus)", t)
			}
		}
		return c.Rules.Validate(c.Series)
	case "noisy":
		if err := c.Noisy.Validate(c.PerRequest); err != nil {
			return err
		}
		if c.Noisy.Cluster {
			return c.Cluster.Validate()
		}
	case "backfill":
	default:
		return fmt.Errorf("-mode must be single, cluster, noisy, longterm, rules or backfill, got %q", c.Mode)
	}
	return nil
}

func (c *Config) targets() []string {
	var ts []string
	for _, t := range strings.Split(c.Targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

func main() {
	var cfg Config
	fs := flag.NewFlagSet("strata-bench", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	fs.Parse(os.Args[1:])
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, os.Stdout); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// run measures every target in turn and prints the comparison table to out.
func run(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) error {
	cfg = cfg.withModeDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.StrataBin != "" {
		// Servers run in the work dir: a relative path (make bench passes
		// bin/strata) must not be resolved there.
		abs, err := filepath.Abs(cfg.StrataBin)
		if err != nil {
			return fmt.Errorf("-strata.bin: %w", err)
		}
		cfg.StrataBin = abs
	}
	dir := cfg.WorkDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("make work dir: %w", err)
		}
	} else {
		d, err := os.MkdirTemp("", "strata-bench-")
		if err != nil {
			return fmt.Errorf("make work dir: %w", err)
		}
		dir = d
	}
	if cfg.Keep {
		log.Info("work dir kept", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	switch cfg.Mode {
	case "cluster":
		return runCluster(ctx, cfg, dir, log, out)
	case "noisy":
		return runNoisy(ctx, cfg, dir, log, out)
	case "longterm":
		return runLongterm(ctx, cfg, dir, log, out)
	case "rules":
		return runRules(ctx, cfg, dir, log, out)
	case "backfill":
		return runBackfill(ctx, cfg, dir, log, out)
	}
	results, err := eachTarget(cfg, dir, "bench", func(t, sub string) (*result, error) {
		return benchTarget(ctx, cfg, t, sub, log)
	})
	if err != nil {
		return err
	}
	printReport(out, cfg, results)
	return writeJSON(cfg.JSONOut, results)
}

// eachTarget runs bench on each of -targets in turn, each in a work dir of
// its own under dir; what names the step in errors.
func eachTarget[R any](cfg Config, dir, what string, bench func(target, sub string) (R, error)) ([]R, error) {
	var results []R
	for _, t := range cfg.targets() {
		sub, err := os.MkdirTemp(dir, t+"-")
		if err != nil {
			return nil, fmt.Errorf("make work dir for %s: %w", t, err)
		}
		r, err := bench(t, sub)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, t, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// writeJSON writes v to path, indented; nothing for an empty path.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// server is one started target.
// strataBin is -strata.bin, or a strata built into dir when it is empty.
func (c Config) strataBin(dir string) (string, error) {
	if c.StrataBin != "" {
		return c.StrataBin, nil
	}
	return procs.BuildStrata(dir)
}

type server struct {
	pushURL, baseURL string
	proc             *procs.Process
}

func startServer(ctx context.Context, cfg Config, target, dir string) (*server, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch target {
	case "strata":
		bin, err := cfg.strataBin(dir)
		if err != nil {
			return nil, err
		}
		s, err := procs.StartStrata(ctx, dir, procs.StrataConfig{Bin: bin, Args: strings.Fields(cfg.StrataArgs)})
		if err != nil {
			return nil, err
		}
		return &server{pushURL: s.URL + "/api/v1/push", baseURL: s.URL, proc: s.Process()}, nil
	case "prometheus":
		p, err := procs.StartPrometheus(ctx, dir, procs.PrometheusConfig{Bin: cfg.PrometheusBin, RemoteWriteReceiver: true})
		if err != nil {
			return nil, err
		}
		return &server{pushURL: p.URL + "/api/v1/write", baseURL: p.URL, proc: p.Process}, nil
	}
	return nil, fmt.Errorf("unknown target %q", target)
}

// benchTarget starts one server, pushes the workload, lets it settle, reads
// its memory, replays the dashboard and stops it.
func benchTarget(ctx context.Context, cfg Config, target, dir string, log *slog.Logger) (*result, error) {
	w, err := buildWorkload(cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, cfg, target, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := srv.proc.Stop(30 * time.Second); err != nil {
			log.Warn("stop server", "target", target, "err", err)
		}
	}()
	log.Info("pushing", "target", target, "pid", srv.proc.PID(), "series", cfg.Series, "rounds", cfg.Rounds, "requests", w.requests())

	before, err := srv.proc.Usage()
	if err != nil {
		return nil, err
	}
	self0, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	push, err := newPusher([]string{srv.pushURL}, cfg.Senders).run(pctx, w)
	cancel()
	if err != nil && ctx.Err() != nil {
		return nil, err // interrupted: no report
	}
	if err != nil {
		log.Warn("push phase cut short; figures cover what was sent", "target", target, "err", err)
	}
	after, err := srv.proc.Usage()
	if err != nil {
		return nil, err
	}
	self1, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	log.Info("pushed", "target", target, "accepted", push.Accepted, "rejected", push.Rejected, "wall", push.Wall.Round(time.Millisecond), "first_error", push.FirstError)

	if err := wait(ctx, cfg.Settle); err != nil {
		return nil, err
	}
	var (
		rss  []int64
		peak int64 // VmHWM after the last reading: the peak of push and settle
	)
	for i := range cfg.RSSReadings {
		if i > 0 {
			if err := wait(ctx, cfg.RSSEvery); err != nil {
				return nil, err
			}
		}
		u, err := srv.proc.Usage()
		if err != nil {
			return nil, err
		}
		rss = append(rss, u.RSSBytes)
		peak = u.PeakRSSBytes
	}
	log.Info("querying", "target", target)
	client := &http.Client{Timeout: 5 * time.Minute}
	qs := runQueries(ctx, client, srv.baseURL, dashboardQueries(cfg.QueryReps), time.UnixMilli(w.lastTS()), cfg.QueryRange, cfg.QueryStep)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return newResult(target, cfg, push, before, after, self1.CPUSeconds-self0.CPUSeconds, rss, peak, qs), nil
}

// buildWorkload makes the workload of cfg with its last round at now, its
// bodies prebuilt when they fit in -prebuild-max-mb.
func buildWorkload(cfg Config, log *slog.Logger) (*workload, error) {
	w, err := newWorkload(cfg.Series, cfg.PerRequest, cfg.Rounds, cfg.Interval, time.Now())
	if err != nil {
		return nil, err
	}
	if est := w.prebuildBytes(); est <= int64(cfg.PrebuildMaxMB)<<20 {
		t0 := time.Now()
		w.prebuild(runtime.GOMAXPROCS(0))
		log.Info("request bodies prebuilt", "requests", w.requests(), "MiB", est>>20, "took", time.Since(t0).Round(time.Millisecond))
	} else {
		log.Info("request bodies built while pushing: prebuilt ones would exceed -prebuild-max-mb", "MiB", est>>20)
	}
	return w, nil
}

// wait pauses for d unless ctx ends first.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
