package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// The default workload of -mode=noisy: tenant B is a mid-size tenant, one
// Prometheus of 300k series at a 15s scrape interval (20,000 samples/s),
// pushing 2,000-sample requests ten times a second; each measured phase
// lasts a minute, so each p99 is the 6th slowest of 600 pushes.
const (
	noisySeries = 20000
	noisyRounds = 60
)

// The tenants of -mode=noisy.
const (
	noisyTenantA = "tenant-a" // floods far over its ingestion rate
	noisyTenantB = "tenant-b" // pushes at a steady rate, well under its own
)

// noisyBHeadroom is tenant B's ingestion rate over its load: its limit
// never comes near, so every one of its refusals is a failure of isolation.
const noisyBHeadroom = 10

// noisyP99Target is the bound on B's p99 push latency with A flooding
// over its p99 alone. The report says PASS or MISS; it is not asserted.
const noisyP99Target = 2.0

// NoisyConfig is the noisy-neighbour run of -mode=noisy. Tenant B's series
// and rounds per phase are -series and -rounds, its requests
// -series-per-request, and -senders bounds its pushes in flight.
type NoisyConfig struct {
	Cluster      bool          `yaml:"cluster"`
	Interval     time.Duration `yaml:"interval"`
	WarmupRounds int           `yaml:"warmup_rounds"`
	ARamp        time.Duration `yaml:"a_ramp"`
	AWorkers     int           `yaml:"a_workers"`
	ARate        float64       `yaml:"a_ingestion_rate"`
	ABurst       int           `yaml:"a_ingestion_burst_size"`
	AMaxRequests int           `yaml:"a_max_requests"`
}

// RegisterFlags registers the noisy-neighbour flags: tenant A limited to
// 10,000 samples/s (Mimir's default) with a burst of 20,000, flooded by 4
// workers.
func (c *NoisyConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.Cluster, "noisy.cluster", false, "Run -mode=noisy against a loopback cluster (-cluster.* flags, the first of -cluster.replication-factors) instead of one process.")
	fs.DurationVar(&c.Interval, "noisy.interval", time.Second, "Tenant B sends every series once per interval, in real time, its requests spread evenly over it; also B's timestamp step.")
	fs.IntVar(&c.WarmupRounds, "noisy.warmup-rounds", 5, "Unmeasured rounds of tenant B before the first phase, so both measured phases find B's series already created.")
	fs.DurationVar(&c.ARamp, "noisy.a-ramp", time.Second, "Tenant A floods this long before tenant B's second phase starts.")
	fs.IntVar(&c.AWorkers, "noisy.a-workers", 4, "Concurrent connections of tenant A; each re-sends a request answered 429 at once, as a client that ignores backoff would.")
	fs.Float64Var(&c.ARate, "noisy.a-ingestion-rate", 10000, "Tenant A's ingestion rate limit (samples/s), set in the runtime overrides file.")
	fs.IntVar(&c.ABurst, "noisy.a-ingestion-burst-size", 20000, "Tenant A's ingestion burst size; at least -series-per-request.")
	fs.IntVar(&c.AMaxRequests, "noisy.a-max-requests", 2000000, "Most pushes tenant A sends; it also stops when B's second phase ends.")
}

// Validate names the first noisy flag the bench cannot use.
func (c *NoisyConfig) Validate(perRequest int) error {
	switch {
	case c.Interval < 10*time.Millisecond:
		return fmt.Errorf("-noisy.interval must be at least 10ms, got %s", c.Interval)
	case c.WarmupRounds < 0:
		return fmt.Errorf("-noisy.warmup-rounds must not be negative, got %d", c.WarmupRounds)
	case c.ARamp < 0:
		return fmt.Errorf("-noisy.a-ramp must not be negative, got %s", c.ARamp)
	case c.AWorkers < 1:
		return fmt.Errorf("-noisy.a-workers must be at least 1, got %d", c.AWorkers)
	case !(c.ARate > 0):
		return fmt.Errorf("-noisy.a-ingestion-rate must be positive, got %v", c.ARate)
	case c.ABurst < perRequest:
		return fmt.Errorf("-noisy.a-ingestion-burst-size %d is below -series-per-request %d: every push of tenant A would get 400, not 429", c.ABurst, perRequest)
	case c.AMaxRequests < 1:
		return fmt.Errorf("-noisy.a-max-requests must be at least 1, got %d", c.AMaxRequests)
	}
	return nil
}

// noisyResult is the whole noisy-neighbour run.
type noisyResult struct {
	Target       string // "single process" or "cluster rf=N"
	BSeries      int
	BPerRequest  int
	BInterval    time.Duration
	BRate        float64 // B's ingestion rate limit
	BBurst       int
	Rounds       int // per phase
	WarmupRounds int
	AWorkers     int
	ASeries      int
	ARate        float64
	ABurst       int
	// Distributors each hold a bucket of the full burst: the global
	// strategy divides the rate among them, not the burst.
	Distributors int
	Phases       []*noisyPhase // B solo, then B with A
	// P99Ratio is B's p99 with A over B's p99 solo; PASS when at most
	// noisyP99Target.
	P99Ratio float64
}

// noisyPhase is what one phase measured.
type noisyPhase struct {
	Name              string
	Seconds           float64 // tenant B's pushes, first to last answer
	BSent             int
	BSucceeded        int
	BFailed           int
	BFirstError       string `json:",omitempty"`
	BP50, BP99, BMax  time.Duration
	StrataCPUSeconds  float64      // every strata process, during the phase
	StrataMaxRSSBytes int64        // every strata process summed, largest reading
	GeneratorCPU      float64      // this process, during the phase
	A                 *floodResult `json:",omitempty"`
}

// floodResult is what tenant A's workers saw.
type floodResult struct {
	Sent, Accepted, Limited, Other int
	SamplesAccepted                int64
	Seconds                        float64
	FirstOther                     string `json:",omitempty"`
}

// samplesPerSecond is A's accepted samples over its whole flood.
func (f *floodResult) samplesPerSecond() float64 {
	if f == nil || f.Seconds == 0 {
		return math.NaN()
	}
	return float64(f.SamplesAccepted) / f.Seconds
}

// noisyRun is a started -mode=noisy target.
type noisyRun struct {
	cfg   Config
	log   *slog.Logger
	urls  []string         // push URLs (distributors take turns)
	procs []*procs.Process // every strata process
	b     *workload        // tenant B's, rounds and base set per phase
	bp    *pusher          // tenant B's, its connections kept across phases
}

// runNoisy starts strata with multi-tenancy on and the two tenants' limits
// in a runtime overrides file, has tenant B push alone, then again while
// tenant A floods far over its limit, and prints the comparison. It fails
// when any push of B failed; B's latency is reported, never asserted.
func runNoisy(ctx context.Context, cfg Config, dir string, log *slog.Logger, out io.Writer) error {
	bin, err := cfg.strataBin(dir)
	if err != nil {
		return err
	}
	bLoad := float64(cfg.Series) / cfg.Noisy.Interval.Seconds()
	res := &noisyResult{
		Target:  "single process",
		BSeries: cfg.Series, BPerRequest: cfg.PerRequest, BInterval: cfg.Noisy.Interval,
		BRate: noisyBHeadroom * bLoad, BBurst: int(math.Ceil(2 * noisyBHeadroom * bLoad)),
		Rounds: cfg.Rounds, WarmupRounds: cfg.Noisy.WarmupRounds,
		AWorkers: cfg.Noisy.AWorkers, ASeries: cfg.Noisy.AWorkers * cfg.PerRequest,
		ARate: cfg.Noisy.ARate, ABurst: cfg.Noisy.ABurst,
	}
	res.BBurst = max(res.BBurst, cfg.PerRequest)
	overrides := filepath.Join(dir, "overrides.yaml")
	if err := os.WriteFile(overrides, noisyOverrides(res), 0o644); err != nil {
		return fmt.Errorf("write runtime overrides: %w", err)
	}
	args := []string{"-auth.multitenancy-enabled", "-runtime-config.file=" + overrides}

	nr := &noisyRun{cfg: cfg, log: log}
	if cfg.Noisy.Cluster {
		rfs, err := cfg.Cluster.replicationFactors()
		if err != nil {
			return err
		}
		cc := cfg.Cluster
		cc.Args = strings.Join(append(args, cc.Args), " ")
		c, err := startCluster(ctx, bin, filepath.Clean(dir), cc, rfs[0])
		if err != nil {
			return err
		}
		defer func() {
			for _, err := range c.stop(30 * time.Second) {
				log.Warn("stop cluster process", "err", err)
			}
		}()
		res.Target = fmt.Sprintf("cluster rf=%d", rfs[0])
		for _, d := range c.byRole(procs.RoleDistributor) {
			nr.urls = append(nr.urls, d.URL()+"/api/v1/push")
		}
		res.Distributors = len(nr.urls)
		for _, n := range c.running() {
			nr.procs = append(nr.procs, n.proc)
		}
	} else {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		s, err := procs.StartStrata(sctx, dir, procs.StrataConfig{Bin: bin, Args: append(args, strings.Fields(cfg.StrataArgs)...)})
		cancel()
		if err != nil {
			return err
		}
		defer func() {
			if err := s.Process().Stop(30 * time.Second); err != nil {
				log.Warn("stop strata", "err", err)
			}
		}()
		nr.urls = []string{s.URL + "/api/v1/push"}
		nr.procs = []*procs.Process{s.Process()}
		res.Distributors = 1
	}

	b, err := newWorkloadAt(cfg.Series, cfg.PerRequest, 1, cfg.Noisy.Interval, time.Now().UnixMilli())
	if err != nil {
		return err
	}
	nr.b = b
	nr.bp = newPusher(nr.urls, cfg.Senders)
	nr.bp.tenant = noisyTenantB
	nr.bp.retries = 0
	nr.bp.spacing = cfg.Noisy.Interval / time.Duration(len(b.batches))
	if cfg.Noisy.WarmupRounds > 0 {
		log.Info("tenant B warming up", "target", res.Target, "rounds", cfg.Noisy.WarmupRounds)
		warm, err := nr.pushB(ctx, cfg.Noisy.WarmupRounds)
		if err != nil {
			return err
		}
		if warm.Rejected > 0 {
			return fmt.Errorf("tenant B warm-up: %d of %d pushes failed: %s", warm.Rejected, warm.Requests, warm.FirstError)
		}
	}
	for _, withA := range []bool{false, true} {
		ph, err := nr.phase(ctx, withA)
		if err != nil {
			return err
		}
		res.Phases = append(res.Phases, ph)
	}
	if p := res.Phases[0].BP99; p > 0 {
		res.P99Ratio = float64(res.Phases[1].BP99) / float64(p)
	}
	printNoisyReport(out, res)
	if err := writeJSON(cfg.JSONOut, res); err != nil {
		return err
	}
	return res.failure()
}

// noisyOverrides is the runtime overrides file of the two tenants.
func noisyOverrides(r *noisyResult) []byte {
	return fmt.Appendf(nil, "overrides:\n  %s:\n    ingestion_rate: %g\n    ingestion_burst_size: %d\n  %s:\n    ingestion_rate: %g\n    ingestion_burst_size: %d\n",
		noisyTenantA, r.ARate, r.ABurst, noisyTenantB, r.BRate, r.BBurst)
}

// failure is the correctness verdict: an error when tenant B lost a push.
func (r *noisyResult) failure() error {
	var failed, sent int
	first := ""
	for _, p := range r.Phases {
		failed += p.BFailed
		sent += p.BSent
		if first == "" {
			first = p.BFirstError
		}
	}
	if failed > 0 {
		return fmt.Errorf("tenant B: %d of %d pushes failed (first: %s)", failed, sent, first)
	}
	return nil
}

// phase runs tenant B's measured rounds, alone or while tenant A floods,
// and reads the strata processes' CPU and memory meanwhile.
func (nr *noisyRun) phase(ctx context.Context, withA bool) (*noisyPhase, error) {
	ph := &noisyPhase{Name: "B solo"}
	if withA {
		ph.Name = "B with A"
	}
	cpu0, err := cpuSeconds(nr.procs)
	if err != nil {
		return nil, err
	}
	self0, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	stopRSS := watchRSS(ctx, nr.procs, 500*time.Millisecond)

	var (
		flood  floodResult
		floodW sync.WaitGroup
		actx   context.Context
		stopA  = func() {}
	)
	if withA {
		a, err := newWorkloadAt(nr.cfg.Noisy.AWorkers*nr.cfg.PerRequest, nr.cfg.PerRequest,
			nr.cfg.Noisy.AMaxRequests/nr.cfg.Noisy.AWorkers+1, 100*time.Millisecond, time.Now().UnixMilli())
		if err != nil {
			return nil, err
		}
		actx, stopA = context.WithTimeout(ctx, nr.cfg.Timeout)
		p := newPusher(nr.urls, nr.cfg.Noisy.AWorkers)
		p.tenant = noisyTenantA
		floodW.Go(func() { flood = p.flood(actx, a, nr.cfg.Noisy.AWorkers, nr.cfg.Noisy.AMaxRequests) })
		nr.log.Info("tenant A flooding", "workers", nr.cfg.Noisy.AWorkers, "ramp", nr.cfg.Noisy.ARamp)
		if err := wait(ctx, nr.cfg.Noisy.ARamp); err != nil {
			stopA()
			floodW.Wait()
			return nil, err
		}
	}
	nr.log.Info("tenant B pushing", "phase", ph.Name, "rounds", nr.cfg.Rounds, "requests", nr.cfg.Rounds*len(nr.b.batches))
	push, err := nr.pushB(ctx, nr.cfg.Rounds)
	stopA()
	floodW.Wait()
	maxRSS := stopRSS()
	if err != nil {
		return nil, err
	}
	cpu1, err := cpuSeconds(nr.procs)
	if err != nil {
		return nil, err
	}
	self1, err := procs.ReadUsage(os.Getpid())
	if err != nil {
		return nil, err
	}
	ph.Seconds = push.Wall.Seconds()
	ph.BSent, ph.BSucceeded, ph.BFailed, ph.BFirstError = push.Requests, push.Accepted, push.Rejected, push.FirstError
	ph.BP50, ph.BP99, ph.BMax = percentile(push.Latencies, 0.50), percentile(push.Latencies, 0.99), percentile(push.Latencies, 1)
	ph.StrataCPUSeconds = cpu1 - cpu0
	ph.StrataMaxRSSBytes = maxRSS
	ph.GeneratorCPU = self1.CPUSeconds - self0.CPUSeconds
	if withA {
		ph.A = &flood
		nr.log.Info("tenant A stopped", "sent", flood.Sent, "limited", flood.Limited, "accepted", flood.Accepted, "other", flood.Other, "first_other", flood.FirstOther)
	}
	nr.log.Info("tenant B pushed", "phase", ph.Name, "sent", ph.BSent, "failed", ph.BFailed, "p99", ph.BP99, "first_error", ph.BFirstError)
	return ph, nil
}

// pushB sends rounds rounds of tenant B's series, paced in real time, its
// timestamps continuing after the last round sent. A push is sent once:
// any answer but 2xx is a failure.
func (nr *noisyRun) pushB(ctx context.Context, rounds int) (pushResult, error) {
	w := nr.b
	next := max(time.Now().UnixMilli(), w.lastTS()+w.interval.Milliseconds())
	w.baseTS, w.rounds = next, rounds
	if err := checkTimestamps(w.baseTS, w.lastTS()); err != nil {
		return pushResult{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, nr.cfg.Timeout)
	defer cancel()
	res, err := nr.bp.run(pctx, w)
	if err != nil && ctx.Err() != nil {
		return res, err // interrupted: no report
	}
	if err != nil {
		nr.log.Warn("tenant B cut short by -timeout; its unsent pushes count as failed", "err", err)
		res.Rejected += w.requests() - res.Requests
		res.Requests = w.requests()
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	return res, nil
}

// flood has workers push w for p.tenant as fast as they can, until ctx
// ends, maxRequests were sent or w's rounds run out. Worker k owns the
// batches b ≡ k (mod workers) and sends their rounds in order, so accepted
// samples arrive in time order; a push answered 429 is sent again at once,
// as a client that ignores backoff would, and any other answer moves on.
// Bodies are built only when a round advances, so the generator's cost
// stays small beside strata's.
func (p *pusher) flood(ctx context.Context, w *workload, workers, maxRequests int) floodResult {
	nb := len(w.batches)
	var (
		sent atomic.Int64
		mu   sync.Mutex
		res  floodResult
		wg   sync.WaitGroup
	)
	start := time.Now()
	for k := range min(workers, nb) {
		wg.Go(func() {
			var buf []byte
			for r := range w.rounds {
				for b := k; b < nb; b += workers {
					body := w.body(r*nb+b, &buf)
					for {
						i := sent.Add(1)
						if i > int64(maxRequests) || ctx.Err() != nil {
							return
						}
						err := p.post(ctx, p.urls[int(i)%len(p.urls)], body)
						if ctx.Err() != nil {
							return // cut off by the end of the phase: not an answer
						}
						code := statusOf(err)
						mu.Lock()
						res.Sent++
						switch {
						case err == nil:
							res.Accepted++
							res.SamplesAccepted += int64(len(w.batches[b].offsets))
						case code == http.StatusTooManyRequests:
							res.Limited++
						default:
							res.Other++
							if res.FirstOther == "" {
								res.FirstOther = err.Error()
							}
						}
						mu.Unlock()
						if code != http.StatusTooManyRequests {
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res
}

// cpuSeconds sums the CPU time of ps so far.
func cpuSeconds(ps []*procs.Process) (float64, error) {
	var sum float64
	for _, p := range ps {
		u, err := p.Usage()
		if err != nil {
			return 0, err
		}
		sum += u.CPUSeconds
	}
	return sum, nil
}

// watchRSS reads the summed RSS of ps every interval until the returned
// function is called; that function returns the largest sum read (a
// process that cannot be read counts 0 in that reading).
func watchRSS(ctx context.Context, ps []*procs.Process, every time.Duration) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	var (
		most int64
		wg   sync.WaitGroup
	)
	read := func() {
		var sum int64
		for _, p := range ps {
			if u, err := p.Usage(); err == nil {
				sum += u.RSSBytes
			}
		}
		most = max(most, sum)
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			read()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() int64 {
		cancel()
		wg.Wait()
		read()
		return most
	}
}
