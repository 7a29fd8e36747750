package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/tenant"
)

// LongtermConfig is -mode=longterm: blocks in the bucket, compaction, and
// queries served by the store-gateway.
type LongtermConfig struct {
	Series          int           `yaml:"series"`
	Span            time.Duration `yaml:"span"`
	Interval        time.Duration `yaml:"interval"`
	DensitySeries   int           `yaml:"density_series"`
	DensitySpan     time.Duration `yaml:"density_span"`
	DensityInterval time.Duration `yaml:"density_interval"`
	ReplicationF    int           `yaml:"replication_factor"`
	QueryStep       time.Duration `yaml:"query_step"`
	ColdReps        int           `yaml:"cold_reps"`
	WarmReps        int           `yaml:"warm_reps"`
	Timeout         time.Duration `yaml:"timeout"`
}

// RegisterFlags registers the -longterm.* flags.
func (c *LongtermConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Series, "longterm.series", 10000, "Series of the query data set (tenant anonymous), node_exporter-like, 2,000 per host.")
	fs.DurationVar(&c.Span, "longterm.span", 7*24*time.Hour, "Time the query data set covers, ending at least 13h before now (so only the store-gateway serves it); a multiple of 24h.")
	fs.DurationVar(&c.Interval, "longterm.interval", time.Minute, "Scrape interval of the query data set; 15s is the standard one, 60s keeps a 7-day run within minutes on 2 cores.")
	fs.IntVar(&c.DensitySeries, "longterm.density-series", 2000, "Series of the bytes-per-sample data set (tenant density), scraped at -longterm.density-interval; 0 skips it.")
	fs.DurationVar(&c.DensitySpan, "longterm.density-span", 48*time.Hour, "Time the bytes-per-sample data set covers; a multiple of 24h.")
	fs.DurationVar(&c.DensityInterval, "longterm.density-interval", 15*time.Second, "Scrape interval of the bytes-per-sample data set.")
	fs.IntVar(&c.ReplicationF, "longterm.replication-factor", 3, "Copies of every 2h block uploaded, as that many ingesters would ship them.")
	fs.DurationVar(&c.QueryStep, "longterm.query-step", 10*time.Minute, "Step of the 7-day range queries (Grafana's ~1,000 points).")
	fs.IntVar(&c.ColdReps, "longterm.cold-reps", 3, "Cold runs of each query: each in a fresh strata process with the store-gateway's local index files deleted.")
	fs.IntVar(&c.WarmReps, "longterm.warm-reps", 10, "Warm runs of each query after each cold one, in the same process.")
	fs.DurationVar(&c.Timeout, "longterm.timeout", 20*time.Minute, "Most time the compaction may take.")
}

// Validate names the first -longterm.* flag the mode cannot use.
func (c *LongtermConfig) Validate() error {
	const day = 24 * time.Hour
	switch {
	case c.Series < 1:
		return fmt.Errorf("-longterm.series must be at least 1, got %d", c.Series)
	case c.Span < day || c.Span%day != 0:
		return fmt.Errorf("-longterm.span must be a positive multiple of 24h, got %s", c.Span)
	case c.Interval < time.Second || (2*time.Hour)%c.Interval != 0:
		return fmt.Errorf("-longterm.interval must be at least 1s and divide 2h, got %s", c.Interval)
	case c.DensitySeries < 0:
		return fmt.Errorf("-longterm.density-series must not be negative, got %d", c.DensitySeries)
	case c.DensitySeries > 0 && (c.DensitySpan < day || c.DensitySpan%day != 0):
		return fmt.Errorf("-longterm.density-span must be a positive multiple of 24h, got %s", c.DensitySpan)
	case c.DensitySeries > 0 && (c.DensityInterval < time.Second || (2*time.Hour)%c.DensityInterval != 0):
		return fmt.Errorf("-longterm.density-interval must be at least 1s and divide 2h, got %s", c.DensityInterval)
	case c.ReplicationF < 1:
		return fmt.Errorf("-longterm.replication-factor must be at least 1, got %d", c.ReplicationF)
	case c.QueryStep < time.Second:
		return fmt.Errorf("-longterm.query-step must be at least 1s, got %s", c.QueryStep)
	case c.ColdReps < 1:
		return fmt.Errorf("-longterm.cold-reps must be at least 1, got %d", c.ColdReps)
	case c.WarmReps < 1:
		return fmt.Errorf("-longterm.warm-reps must be at least 1, got %d", c.WarmReps)
	case c.Timeout <= 0:
		return fmt.Errorf("-longterm.timeout must be positive, got %s", c.Timeout)
	}
	return nil
}

// The tenants of the two data sets; multi-tenancy is off, so queries go to
// tenant.Anonymous.
const densityTenant = "density"

// compactionDeletionDelay is -compactor.deletion-delay while compacting: just
// above the 2s -blocks-storage.bucket-index.max-stale-period.
const compactionDeletionDelay = 3 * time.Second

const blockRangeMs = int64(2 * time.Hour / time.Millisecond)

// longtermQueries are the two standard panels over 7 days.
func longtermQueries() []dashboardQuery {
	return []dashboardQuery{
		{Name: "one-series", Query: `rate(node_cpu_seconds_total{instance="host-00000:9100",cpu="0",mode="idle"}[5m])`},
		{Name: "sum-by-job", Query: `sum by (job) (rate({cluster="bench"}[5m]))`},
	}
}

// runLongterm writes RF copies of ingester blocks into a filesystem bucket,
// lets strata's compactor merge them, measures the bucket, then queries the
// data through the store-gateway cold and warm.
func runLongterm(ctx context.Context, cfg Config, dir string, log *slog.Logger, out io.Writer) error {
	lc := cfg.Longterm
	bin, err := cfg.strataBin(dir)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "data")
	bucketDir := filepath.Join(dataDir, "bucket")
	bkt, err := filesystem.NewBucket(bucketDir)
	if err != nil {
		return fmt.Errorf("open bucket: %w", err)
	}
	defer bkt.Close()

	// The data ends on a day boundary at least 15h ago: older than
	// -querier.query-ingesters-within (13h), and every 24h window is
	// complete and 2h past its end, so the compactor merges it.
	const day = int64(24 * time.Hour / time.Millisecond)
	end := (time.Now().Add(-15*time.Hour).UnixMilli() / day) * day
	res := &longtermResult{Config: lc}
	sets := []struct {
		tenant string
		g      genSpan
		st     *genStats
	}{
		{tenant.Anonymous, newGenSpan(lc.Series, end, lc.Span, lc.Interval), &res.Query},
	}
	if lc.DensitySeries > 0 {
		sets = append(sets, struct {
			tenant string
			g      genSpan
			st     *genStats
		}{densityTenant, newGenSpan(lc.DensitySeries, end, lc.DensitySpan, lc.DensityInterval), &res.Density})
	}
	for _, s := range sets {
		log.Info("writing ingester blocks", "tenant", s.tenant, "series", s.g.series, "rounds", s.g.rounds, "samples", int64(s.g.series)*s.g.rounds, "rf", lc.ReplicationF)
		t0 := time.Now()
		st, err := writeIngesterBlocks(ctx, s.g, blockRangeMs, lc.ReplicationF, runtime.GOMAXPROCS(0), objstore.NewPrefixedBucket(bkt, s.tenant), s.tenant, filepath.Join(dir, "gen"), log)
		if err != nil {
			return fmt.Errorf("write blocks of tenant %s: %w", s.tenant, err)
		}
		st.Wall = time.Since(t0)
		*s.st = st
		log.Info("ingester blocks uploaded", "tenant", s.tenant, "blocks", st.Blocks, "copies", st.Blocks*lc.ReplicationF, "MiB", st.UploadBytes>>20, "took", st.Wall.Round(time.Millisecond))
	}

	extra := strings.Fields(cfg.StrataArgs)
	scfg := procs.StrataConfig{Bin: bin, DataDir: dataDir, Args: append([]string{"-blocks-storage.filesystem.dir=" + bucketDir}, extra...)}
	// The compaction process deletes merged blocks seconds after marking
	// them, so that queries read only the result. Nothing queries that
	// process, so the tiny index staleness strata then requires is harmless.
	ccfg := scfg
	ccfg.Args = append([]string{
		"-blocks-storage.filesystem.dir=" + bucketDir,
		"-compactor.first-level-compaction-wait-period=0s",
		"-blocks-storage.bucket-index.ignore-deletion-marks-delay=0s",
		"-blocks-storage.bucket-index.max-stale-period=2s",
		"-blocks-storage.bucket-index.update-interval=1s",
		"-compactor.cleanup-interval=1s",
		"-compactor.deletion-delay=" + compactionDeletionDelay.String(),
	}, extra...)
	if err := compactBucket(ctx, lc, dir, ccfg, res, log); err != nil {
		return err
	}
	for _, s := range sets {
		bs, err := measureBucket(filepath.Join(bucketDir, s.tenant))
		if err != nil {
			return err
		}
		if s.tenant == densityTenant || lc.DensitySeries == 0 {
			if res.Families, err = familyBreakdown(ctx, filepath.Join(bucketDir, s.tenant)); err != nil {
				return err
			}
		}
		if s.tenant == densityTenant {
			res.DensityAfter = bs
		} else {
			res.QueryAfter = bs
		}
	}

	g := sets[0].g
	qend := time.UnixMilli(g.end())
	for _, q := range longtermQueries() {
		qr, err := runLongtermQuery(ctx, lc, dir, scfg, q, qend.Add(-lc.Span), qend, log)
		if err != nil {
			return err
		}
		res.Queries = append(res.Queries, qr)
	}
	if err := verifyLongterm(ctx, dir, scfg, g, res); err != nil {
		return err
	}
	printLongterm(out, res)
	if err := writeJSON(cfg.JSONOut, res); err != nil {
		return err
	}
	if res.Verify.Mismatches > 0 || res.Verify.Points == 0 {
		return fmt.Errorf("queried answers differ from the generated data: %s", res.Verify.FirstMismatch)
	}
	return nil
}

// startLongtermStrata starts strata with its log in the new directory
// logDir and the shared data dir of scfg.
func startLongtermStrata(ctx context.Context, logDir string, scfg procs.StrataConfig) (*procs.Strata, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("make log dir: %w", err)
	}
	return procs.StartStrata(ctx, logDir, scfg)
}

// newGenSpan is series scraped every interval over span, ending at end (ms).
func newGenSpan(series int, end int64, span, interval time.Duration) genSpan {
	iv := interval.Milliseconds()
	return genSpan{series: series, start: end - span.Milliseconds(), interval: iv, rounds: span.Milliseconds() / iv}
}

// compactBucket starts strata, has its compactor run until a run changes
// nothing and no block waits for deletion, and stops it.
func compactBucket(ctx context.Context, lc LongtermConfig, dir string, scfg procs.StrataConfig, res *longtermResult, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, lc.Timeout)
	defer cancel()
	t0 := time.Now()
	s, err := startLongtermStrata(ctx, filepath.Join(dir, "compact"), scfg)
	if err != nil {
		return fmt.Errorf("start strata: %w", err)
	}
	defer s.Process().Stop(30 * time.Second)
	u0, err := s.Process().Usage()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: lc.Timeout}
	bucketDir := strings.TrimPrefix(scfg.Args[0], "-blocks-storage.filesystem.dir=")
	prev := ""
	for run := 1; ; run++ {
		if err := postCompactorRun(ctx, client, s.URL); err != nil {
			return fmt.Errorf("compactor run %d: %w\n%s", run, err, s.Process().LogTail(20))
		}
		state, marked, err := bucketState(bucketDir)
		if err != nil {
			return err
		}
		log.Info("compactor run done", "run", run, "blocks", state, "marked", marked, "elapsed", time.Since(t0).Round(time.Second))
		if run == 1 {
			// The startup run and this one merged every ready group;
			// later runs only delete what they marked.
			res.MergeWall = time.Since(t0)
		}
		if state == prev && marked == 0 {
			res.CompactRuns = run
			break
		}
		if state == prev {
			// Only marked blocks wait for -compactor.deletion-delay.
			if err := wait(ctx, time.Second); err != nil {
				return fmt.Errorf("compaction: blocks still marked for deletion: %w", err)
			}
		}
		prev = state
		if run == 100 {
			return fmt.Errorf("the bucket still changes after %d compactor runs: %s", run, state)
		}
	}
	u1, err := s.Process().Usage()
	if err != nil {
		return err
	}
	res.CompactWall = time.Since(t0)
	res.CompactCPUSeconds = u1.CPUSeconds - u0.CPUSeconds
	res.CompactPeakRSS = u1.PeakRSSBytes
	return nil
}

func postCompactorRun(ctx context.Context, client *http.Client, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/compactor/run", nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// bucketState summarises every tenant's blocks as "tenant:count," and counts
// deletion marks.
func bucketState(bucketDir string) (string, int, error) {
	tenants, err := os.ReadDir(bucketDir)
	if err != nil {
		return "", 0, fmt.Errorf("list bucket: %w", err)
	}
	var (
		sb     strings.Builder
		marked int
	)
	for _, t := range tenants {
		if !t.IsDir() {
			continue
		}
		blocks, err := os.ReadDir(filepath.Join(bucketDir, t.Name()))
		if err != nil {
			return "", 0, fmt.Errorf("list tenant %s: %w", t.Name(), err)
		}
		n := 0
		for _, b := range blocks {
			if _, ok := block.ParseDir(b.Name()); !ok {
				continue
			}
			n++
			if _, err := os.Stat(filepath.Join(bucketDir, t.Name(), b.Name(), block.DeletionMarkFilename)); err == nil {
				marked++
			}
		}
		fmt.Fprintf(&sb, "%s:%d,", t.Name(), n)
	}
	return sb.String(), marked, nil
}

// bucketStats is one tenant's share of the bucket.
type bucketStats struct {
	Blocks     int
	Bytes      int64 // block objects (chunks, index, meta.json)
	IndexBytes int64 // of which index files
	MetaBytes  int64 // of which meta.json
	OtherBytes int64 // outside blocks (bucket-index.json.gz)
	Samples    int64 // sum of the blocks' meta.json stats
	MinLevel   int
	MaxLevel   int
	MaxSpan    time.Duration
}

// measureBucket walks one tenant's directory of the filesystem bucket.
func measureBucket(tenantDir string) (bucketStats, error) {
	var bs bucketStats
	entries, err := os.ReadDir(tenantDir)
	if err != nil {
		return bs, fmt.Errorf("list %s: %w", tenantDir, err)
	}
	for _, e := range entries {
		p := filepath.Join(tenantDir, e.Name())
		if _, ok := block.ParseDir(e.Name()); !ok || !e.IsDir() {
			err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				info, err := d.Info()
				if err == nil {
					bs.OtherBytes += info.Size()
				}
				return err
			})
			if err != nil {
				return bs, fmt.Errorf("measure %s: %w", p, err)
			}
			continue
		}
		m, err := block.ReadMetaFile(p)
		if err != nil {
			return bs, err
		}
		bs.Blocks++
		bs.Samples += int64(m.Stats.NumSamples)
		if bs.MinLevel == 0 || m.Compaction.Level < bs.MinLevel {
			bs.MinLevel = m.Compaction.Level
		}
		bs.MaxLevel = max(bs.MaxLevel, m.Compaction.Level)
		bs.MaxSpan = max(bs.MaxSpan, time.Duration(m.MaxTime-m.MinTime)*time.Millisecond)
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			bs.Bytes += info.Size()
			switch d.Name() {
			case block.IndexFilename:
				bs.IndexBytes += info.Size()
			case block.MetaFilename:
				bs.MetaBytes += info.Size()
			}
			return nil
		})
		if err != nil {
			return bs, fmt.Errorf("measure %s: %w", p, err)
		}
	}
	return bs, nil
}

// storeGatewayCounters are read from /metrics before and after a phase.
var storeGatewayCounters = []string{
	`strata_storegateway_cache_hits_total{cache="chunks"}`,
	`strata_storegateway_cache_misses_total{cache="chunks"}`,
	`strata_storegateway_cache_hits_total{cache="postings"}`,
	`strata_storegateway_cache_misses_total{cache="postings"}`,
	`strata_storegateway_cache_evictions_total{cache="chunks"}`,
	`strata_storegateway_bucket_fetched_bytes_total{what="index"}`,
	`strata_storegateway_bucket_fetched_bytes_total{what="chunks"}`,
	`strata_storegateway_index_header_builds_total`,
	`strata_storegateway_block_loads_total`,
	`strata_storegateway_chunk_range_requests_total`,
	`strata_storegateway_series_returned_total`,
	`strata_storegateway_chunks_returned_total`,
}

// scrapeCounters returns the values of names (exact "name{labels}" as
// exposed) from baseURL/metrics; missing ones are 0.
func scrapeCounters(ctx context.Context, client *http.Client, baseURL string, names []string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("build metrics request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s/metrics: %w", baseURL, err)
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || !want[line[:i]] {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// longtermQuery is one panel's figures.
type longtermQuery struct {
	Name, Query string
	Series      int
	Cold, Warm  []time.Duration
	// Refresh is the cold query sent again at once, answered by the
	// query-frontend's results cache (Cold filled it).
	Refresh       []time.Duration
	Errors        int
	LastError     string             `json:",omitempty"`
	ColdCounters  map[string]float64 // summed over the cold runs
	WarmCounters  map[string]float64 // summed over the warm runs
	StartDuration []time.Duration    // strata start to /ready, per cold run
}

// runLongtermQuery measures q over [start, end]: per cold run a fresh
// strata whose store-gateway has no local index file, one cold query (it
// fills the query-frontend's results cache), the identical refresh (from
// that cache), then -longterm.warm-reps warm ones that bypass the results
// cache (Cache-Control: no-store): the read path warm.
func runLongtermQuery(ctx context.Context, lc LongtermConfig, dir string, scfg procs.StrataConfig, q dashboardQuery, start, end time.Time, log *slog.Logger) (longtermQuery, error) {
	r := longtermQuery{Name: q.Name, Query: q.Query, ColdCounters: map[string]float64{}, WarmCounters: map[string]float64{}}
	client := &http.Client{Timeout: 5 * time.Minute}
	end = end.Truncate(lc.QueryStep)
	start = start.Truncate(lc.QueryStep)
	for c := range lc.ColdReps {
		if err := os.RemoveAll(filepath.Join(scfg.DataDir, "store-gateway")); err != nil {
			return r, fmt.Errorf("drop store-gateway files: %w", err)
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		t0 := time.Now()
		s, err := startLongtermStrata(sctx, filepath.Join(dir, fmt.Sprintf("query-%s-%d", q.Name, c)), scfg)
		cancel()
		if err != nil {
			return r, fmt.Errorf("start strata: %w", err)
		}
		r.StartDuration = append(r.StartDuration, time.Since(t0))
		err = func() error {
			defer s.Process().Stop(30 * time.Second)
			m0, err := scrapeCounters(ctx, client, s.URL, storeGatewayCounters)
			if err != nil {
				return err
			}
			for i := range 2 + lc.WarmReps {
				var h http.Header
				if i >= 2 {
					h = noStore()
				}
				t := time.Now()
				n, err := queryRange(ctx, client, s.URL, q.Query, start, end, lc.QueryStep, h)
				lat := time.Since(t)
				if err != nil {
					r.Errors++
					r.LastError = err.Error()
					log.Warn("query failed", "query", q.Name, "err", err)
				} else {
					r.Series = n
					switch i {
					case 0:
						r.Cold = append(r.Cold, lat)
					case 1:
						r.Refresh = append(r.Refresh, lat)
					default:
						r.Warm = append(r.Warm, lat)
					}
				}
				m1, err := scrapeCounters(ctx, client, s.URL, storeGatewayCounters)
				if err != nil {
					return err
				}
				dst := r.WarmCounters
				if i == 0 {
					dst = r.ColdCounters
				}
				for _, k := range storeGatewayCounters {
					dst[k] += m1[k] - m0[k]
				}
				m0 = m1
			}
			return nil
		}()
		if err != nil {
			return r, err
		}
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		log.Info("query measured", "query", q.Name, "cold_run", c+1, "cold", r.Cold, "series", r.Series)
	}
	return r, nil
}

// verifyResult compares raw queried samples with the generated ones.
type verifyResult struct {
	Series        []string
	Points        int
	Mismatches    int
	FirstMismatch string `json:",omitempty"`
}

// verifySeries are indexes of series checked: a CPU counter, a filesystem
// avail gauge and the constant filesystem size of host 0, and the last
// series generated.
func verifySeries(n int) []int {
	out := []int{}
	for _, i := range []int{0, 5, 6, 8, n - 1} {
		if i < n && (len(out) == 0 || out[len(out)-1] != i) {
			out = append(out, i)
		}
	}
	return out
}

// verifyLongterm queries a few raw series at step = interval in a fresh
// strata over the first and the last window of the data (at most 10,000
// points each) and compares every point with the model.
func verifyLongterm(ctx context.Context, dir string, scfg procs.StrataConfig, g genSpan, res *longtermResult) error {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := startLongtermStrata(sctx, filepath.Join(dir, "verify"), scfg)
	cancel()
	if err != nil {
		return fmt.Errorf("start strata: %w", err)
	}
	defer s.Process().Stop(30 * time.Second)
	client := &http.Client{Timeout: 5 * time.Minute}
	window := min(g.rounds, 10000)
	v := &res.Verify
	for _, i := range verifySeries(g.series) {
		sel := selector(seriesLabels(i))
		v.Series = append(v.Series, sel)
		m := newSeriesModel(i)
		for _, r0 := range []int64{0, g.rounds - window} {
			from, to := g.start+r0*g.interval, g.start+(r0+window-1)*g.interval
			pts, err := queryRawRange(ctx, client, s.URL, sel, from, to, g.interval)
			if err != nil {
				return fmt.Errorf("verify %s: %w", sel, err)
			}
			for _, p := range pts {
				v.Points++
				r, ok := g.roundAt(p.ts)
				want := m.at(i, r)
				if !ok || p.v != want {
					v.Mismatches++
					if v.FirstMismatch == "" {
						v.FirstMismatch = fmt.Sprintf("%s at %d: got %v, want %v (round %d, on the grid: %t)", sel, p.ts, p.v, want, r, ok)
					}
				}
			}
			if want := int(window); len(pts) != want {
				v.Mismatches++
				if v.FirstMismatch == "" {
					v.FirstMismatch = fmt.Sprintf("%s from %d: %d points, want %d", sel, from, len(pts), want)
				}
			}
		}
	}
	return nil
}

// selector is the PromQL selector of exactly one series.
func selector(ls [][2]string) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for k, l := range ls {
		if k > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=%q", l[0], l[1])
	}
	sb.WriteByte('}')
	return sb.String()
}

type rawPoint struct {
	ts int64 // ms
	v  float64
}

// queryRawRange runs query_range for one series selector and returns its
// points; more than one result series is an error.
func queryRawRange(ctx context.Context, client *http.Client, baseURL, sel string, from, to, stepMs int64) ([]rawPoint, error) {
	ans, err := queryRangeJSON(ctx, client, baseURL, sel, from, to, stepMs)
	if err != nil {
		return nil, err
	}
	if len(ans) != 1 {
		return nil, fmt.Errorf("%d result series, want 1", len(ans))
	}
	var pts []rawPoint
	for _, p := range ans[0].Values {
		if len(p) != 2 {
			return nil, errors.New("malformed point")
		}
		ts, err := strconv.ParseFloat(string(p[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("parse timestamp: %w", err)
		}
		s, err := strconv.Unquote(string(p[1]))
		if err != nil {
			return nil, fmt.Errorf("parse value: %w", err)
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("parse value: %w", err)
		}
		pts = append(pts, rawPoint{ts: int64(ts*1000 + 0.5), v: v})
	}
	return pts, nil
}
