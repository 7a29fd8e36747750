package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ruleSnapshot is one reading of a server's rule self-metrics, every
// counter summed over tenants and groups.
type ruleSnapshot struct {
	Evaluations, Failures, Iterations, Missed float64
	DurationCount, DurationSum                float64            // group iterations and their seconds
	LastEval                                  map[string]float64 // group -> start of its last iteration, unix seconds
}

// scrapeRuleMetrics reads base's /metrics.
func scrapeRuleMetrics(ctx context.Context, client *http.Client, base string, names ruleMetricNames) (ruleSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return ruleSnapshot{}, fmt.Errorf("build metrics request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return ruleSnapshot{}, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ruleSnapshot{}, fmt.Errorf("read metrics: status %d", resp.StatusCode)
	}
	return parseRuleMetrics(resp.Body, names)
}

// parseRuleMetrics sums the rule metrics of a text exposition.
func parseRuleMetrics(r io.Reader, names ruleMetricNames) (ruleSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return ruleSnapshot{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := ruleSnapshot{LastEval: map[string]float64{}}
	sum := func(name string) float64 {
		var v float64
		if mf := mfs[name]; mf != nil {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
			}
		}
		return v
	}
	s.Evaluations, s.Failures = sum(names.evaluations), sum(names.failures)
	s.Iterations, s.Missed = sum(names.iterations), sum(names.missed)
	if mf := mfs[names.duration]; mf != nil {
		for _, m := range mf.GetMetric() {
			s.DurationCount += float64(m.GetSummary().GetSampleCount())
			s.DurationSum += m.GetSummary().GetSampleSum()
		}
	}
	if mf := mfs[names.lastEval]; mf != nil {
		for _, m := range mf.GetMetric() {
			if v := m.GetGauge().GetValue(); v > 0 { // 0: never evaluated
				s.LastEval[groupKey(m, names.groupKey)] = v
			}
		}
	}
	return s, nil
}

func groupKey(m *dto.Metric, labels []string) string {
	var parts []string
	for _, name := range labels {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				parts = append(parts, l.GetValue())
			}
		}
	}
	return strings.Join(parts, "/")
}

// addStarts adds each group's last start to starts, once per value.
func (s ruleSnapshot) addStarts(starts map[string][]float64) {
	for g, v := range s.LastEval {
		if l := starts[g]; len(l) == 0 || l[len(l)-1] != v {
			starts[g] = append(l, v)
		}
	}
}

// startDelays are the delays behind schedule of the observed starts of
// one group evaluated every interval seconds. A group's iterations are
// due on a grid of its own (slot = offset + k*interval, the offset a hash
// of its name that its metrics do not show), and an iteration never starts
// before its slot. So the start phases (start mod interval) cluster just
// after the offset: the offset is taken as the phase that follows the
// widest gap between phases around the circle, i.e. the group's least
// delayed start, and each start's delay is its phase minus that offset
// (mod interval). It is a lower bound: exact when the group's best start
// was on time, which on an idle-enough machine it is within a millisecond.
// Delays of whole intervals are not seen here; they are missed iterations.
// A group seen starting fewer than twice gives nothing.
func startDelays(starts []float64, interval float64) []float64 {
	if len(starts) < 2 {
		return nil
	}
	phases := make([]float64, len(starts))
	for i, s := range starts {
		phases[i] = math.Mod(s, interval)
	}
	sorted := slices.Clone(phases)
	slices.Sort(sorted)
	offset, widest := sorted[0], sorted[0]+interval-sorted[len(sorted)-1]
	for i := 1; i < len(sorted); i++ {
		if gap := sorted[i] - sorted[i-1]; gap > widest {
			offset, widest = sorted[i], gap
		}
	}
	out := make([]float64, len(phases))
	for i, p := range phases {
		out[i] = math.Mod(p-offset+interval, interval)
	}
	return out
}

// rulesResult is every figure of one server's rule evaluation.
type rulesResult struct {
	Target              string
	Seconds             float64 // measured window
	GroupsExpected      int
	GroupsSeen          int // groups that started at least once in the window
	Evaluations         float64
	Failures            float64
	Iterations          float64
	Missed              float64
	IterationSeconds    float64 // summed duration of the iterations ended in the window
	IterationCount      float64
	DelaySamples        int
	DelayP50, DelayP99  time.Duration
	DelayMax            time.Duration
	CPUSeconds          float64
	PeakRSSBytes        int64
	RSSBeforeRulesBytes int64 // after the history was pushed, before the rules were loaded
	RSSEndBytes         int64
	GeneratorCPUSeconds float64
	RecordedSeries      int // series tenant-000's rules wrote, at the end
	Feed                feedResult
}

// newRulesResult is the difference of two snapshots seconds apart, with
// the delays of every start seen in between.
func newRulesResult(target string, rc RulesConfig, seconds float64, first, last ruleSnapshot, starts map[string][]float64) *rulesResult {
	r := &rulesResult{
		Target:           target,
		Seconds:          seconds,
		GroupsExpected:   rc.Tenants * ((rc.perTenant() + rc.GroupSize - 1) / rc.GroupSize),
		Evaluations:      last.Evaluations - first.Evaluations,
		Failures:         last.Failures - first.Failures,
		Iterations:       last.Iterations - first.Iterations,
		Missed:           last.Missed - first.Missed,
		IterationSeconds: last.DurationSum - first.DurationSum,
		IterationCount:   last.DurationCount - first.DurationCount,
	}
	var delays []time.Duration
	for g, s := range starts {
		if first.LastEval[g] != s[len(s)-1] {
			r.GroupsSeen++
		}
		for _, d := range startDelays(s, rc.Interval.Seconds()) {
			delays = append(delays, time.Duration(d*float64(time.Second)))
		}
	}
	r.DelaySamples = len(delays)
	r.DelayP50, r.DelayP99, r.DelayMax = percentile(delays, 0.50), percentile(delays, 0.99), percentile(delays, 1)
	return r
}

func (r *rulesResult) evaluationsPerSecond() float64 { return perSecondOf(r.Evaluations, r.Seconds) }

// cpuMillisPerRule is the server's CPU time per rule evaluated; NaN when
// none was.
func (r *rulesResult) cpuMillisPerRule() float64 {
	if r.Evaluations == 0 {
		return math.NaN()
	}
	return r.CPUSeconds / r.Evaluations * 1000
}

func (r *rulesResult) meanIterationMillis() float64 {
	if r.IterationCount == 0 {
		return math.NaN()
	}
	return r.IterationSeconds / r.IterationCount * 1000
}

func perSecondOf(v, seconds float64) float64 {
	if seconds == 0 {
		return 0
	}
	return v / seconds
}

// rulesFigures are the rows of the rule-evaluation table.
func rulesFigures() []figure[*rulesResult] {
	return []figure[*rulesResult]{
		{"rule evaluations/s", "", func(r *rulesResult) float64 { return r.evaluationsPerSecond() }},
		{"rule evaluations failed", "", func(r *rulesResult) float64 { return r.Failures }},
		{"group iterations", "", func(r *rulesResult) float64 { return r.Iterations }},
		{"group iterations missed", "", func(r *rulesResult) float64 { return r.Missed }},
		{"groups started in window", "", func(r *rulesResult) float64 { return float64(r.GroupsSeen) }},
		{"series recorded by " + rulesTenant(0), "", func(r *rulesResult) float64 { return float64(r.RecordedSeries) }},
		{"group iteration mean", "ms", func(r *rulesResult) float64 { return r.meanIterationMillis() }},
		{"start delay p50", "ms", func(r *rulesResult) float64 { return millis(r.DelayP50) }},
		{"start delay p99", "ms", func(r *rulesResult) float64 { return millis(r.DelayP99) }},
		{"start delay max", "ms", func(r *rulesResult) float64 { return millis(r.DelayMax) }},
		{"server CPU", "cores", func(r *rulesResult) float64 { return perSecondOf(r.CPUSeconds, r.Seconds) }},
		{"server CPU per evaluated rule", "ms", func(r *rulesResult) float64 { return r.cpuMillisPerRule() }},
		{"RSS with the data, before the rules", "MiB", func(r *rulesResult) float64 { return mib(r.RSSBeforeRulesBytes) }},
		{"RSS at the end", "MiB", func(r *rulesResult) float64 { return mib(r.RSSEndBytes) }},
		{"peak RSS", "MiB", func(r *rulesResult) float64 { return mib(r.PeakRSSBytes) }},
		{"generator CPU", "cores", func(r *rulesResult) float64 { return perSecondOf(r.GeneratorCPUSeconds, r.Seconds) }},
	}
}

// printRulesReport writes the workload, how each figure is read, and the
// table with the ratio of the first target over the second.
func printRulesReport(out io.Writer, cfg Config, results []*rulesResult) {
	rc := cfg.Rules
	groups := rc.Tenants * ((rc.perTenant() + rc.GroupSize - 1) / rc.GroupSize)
	fmt.Fprintf(out, "rule evaluation: %d recording rules in %d groups of %d, every %s, over %d tenants (%d rules each); %d series x 11 labels in all, spread over the tenants (%d each, not %d each; label %s), a sample every %s in real time after %s of history\n",
		rc.Count, groups, rc.GroupSize, rc.Interval, rc.Tenants, rc.perTenant(), cfg.Series, cfg.Series/rc.Tenants, cfg.Series, rulesTenantLabel, cfg.Interval, rc.History)
	fmt.Fprintf(out, "  strata: one process, multi-tenancy on, each tenant's groups uploaded to /config/v1/rules/%s; prometheus: every tenant's groups in one rule file, the same series by remote-write; each rule selects %s=\"<tenant>\"\n", rulesNamespace, rulesTenantLabel)
	fmt.Fprintf(out, "  measured %s after a %s warm-up, on this machine (%d CPUs) with the generator; server CPU includes ingesting the feed (%.0f samples/s)\n",
		rc.Duration, rc.Warmup, runtime.NumCPU(), float64(cfg.Series)/cfg.Interval.Seconds())
	fmt.Fprintf(out, "  start delay: per group, the starts seen (last evaluation timestamp, read every %s) minus the group's schedule, taken as its least delayed start phase mod the interval; missed iterations are counted apart\n", rc.ScrapeEvery)
	for _, r := range results {
		fmt.Fprintf(out, "%s: %.1fs measured, %.0f evaluations, %d start-delay samples, %d of %d groups started, feed %d pushes (%d failed), server %.1f CPU-s\n",
			r.Target, r.Seconds, r.Evaluations, r.DelaySamples, r.GroupsSeen, r.GroupsExpected, r.Feed.Requests, r.Feed.Rejected, r.CPUSeconds)
		if r.Feed.FirstError != "" {
			fmt.Fprintf(out, "  first failed push: %s\n", r.Feed.FirstError)
		}
	}
	t := figureTable[*rulesResult]{results: results, figures: rulesFigures()}
	for _, r := range results {
		t.columns = append(t.columns, r.Target)
	}
	if len(results) == 2 {
		t.ratio = []int{0, 1}
	}
	t.print(out)
}

// recordedSeries counts the series the rules of tenant wrote (bench:*
// names) as the target answers now: the same figure on both servers says
// they computed the same results.
func recordedSeries(ctx context.Context, client *http.Client, base, tenant string) (int, error) {
	q := url.Values{"query": {fmt.Sprintf(`count({__name__=~"bench:.+",%s=%q})`, rulesTenantLabel, tenant)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return 0, fmt.Errorf("build query: %w", err)
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("query recorded series: %w", err)
	}
	defer resp.Body.Close()
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 0, fmt.Errorf("decode query answer: %w", err)
	}
	if ans.Status != "success" {
		return 0, fmt.Errorf("query recorded series: %s", ans.Error)
	}
	if len(ans.Data.Result) == 0 {
		return 0, nil
	}
	s, _ := ans.Data.Result[0].Value[1].(string)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("query recorded series: value %q: %w", s, err)
	}
	return n, nil
}
