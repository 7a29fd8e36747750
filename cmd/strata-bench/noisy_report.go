package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
)

// noisyFigures are the rows of the noisy-neighbour table; tenant A's rows
// do not apply to the solo phase.
func noisyFigures(r *noisyResult) []figure[*noisyPhase] {
	a := func(f func(a *floodResult) float64) func(p *noisyPhase) float64 {
		return func(p *noisyPhase) float64 {
			if p.A == nil {
				return math.NaN()
			}
			return f(p.A)
		}
	}
	perSecond := func(p *noisyPhase, v float64) float64 {
		if p.Seconds == 0 {
			return 0
		}
		return v / p.Seconds
	}
	return []figure[*noisyPhase]{
		{"B pushes sent", "", func(p *noisyPhase) float64 { return float64(p.BSent) }},
		{"B pushes succeeded", "", func(p *noisyPhase) float64 { return float64(p.BSucceeded) }},
		{"B pushes failed", "", func(p *noisyPhase) float64 { return float64(p.BFailed) }},
		{"B pushes/s", "", func(p *noisyPhase) float64 { return perSecond(p, float64(p.BSent)) }},
		{"B push latency p50", "ms", func(p *noisyPhase) float64 { return millis(p.BP50) }},
		{"B push latency p99", "ms", func(p *noisyPhase) float64 { return millis(p.BP99) }},
		{"B push latency max", "ms", func(p *noisyPhase) float64 { return millis(p.BMax) }},
		{"A pushes sent", "", a(func(a *floodResult) float64 { return float64(a.Sent) })},
		{"A pushes answered 429", "", a(func(a *floodResult) float64 { return float64(a.Limited) })},
		{"A pushes accepted", "", a(func(a *floodResult) float64 { return float64(a.Accepted) })},
		{"A pushes answered otherwise", "", a(func(a *floodResult) float64 { return float64(a.Other) })},
		{fmt.Sprintf("A accepted samples/s (limit %g)", r.ARate), "", a(func(a *floodResult) float64 { return a.samplesPerSecond() })},
		{"strata CPU", "cores", func(p *noisyPhase) float64 { return perSecond(p, p.StrataCPUSeconds) }},
		{"strata RSS, largest", "MiB", func(p *noisyPhase) float64 { return mib(p.StrataMaxRSSBytes) }},
		{"generator CPU", "cores", func(p *noisyPhase) float64 { return perSecond(p, p.GeneratorCPU) }},
	}
}

// printNoisyReport writes the workload, the table of both phases with the
// ratio "with A" over "solo", and the two verdicts: tenant B lost no push
// (the correctness check, which also sets the exit status) and B's p99
// within noisyP99Target of solo (reported, not asserted).
func printNoisyReport(out io.Writer, r *noisyResult) {
	bPushes := float64(r.BSeries) / float64(r.BPerRequest) / r.BInterval.Seconds()
	fmt.Fprintf(out, "noisy neighbour (%s, multi-tenancy on): tenant B sends %d series x 10 labels every %s in requests of %d series (%.1f pushes/s, %.0f samples/s; its limit %g samples/s, burst %d), %d warm-up rounds, then %d rounds alone and %d rounds while tenant A floods\n",
		r.Target, r.BSeries, r.BInterval, r.BPerRequest, math.Ceil(bPushes), float64(r.BSeries)/r.BInterval.Seconds(), r.BRate, r.BBurst, r.WarmupRounds, r.Rounds, r.Rounds)
	fmt.Fprintf(out, "  tenant A: %d series, %d connections each re-sending a %d-sample push at once when answered 429; its limit %g samples/s, burst %d\n",
		r.ASeries, r.AWorkers, r.BPerRequest, r.ARate, r.ABurst)
	fmt.Fprintf(out, "  strata, tenant A's and tenant B's senders share this one machine (%d CPUs); B's latency is one attempt, send to answer\n", runtime.NumCPU())
	for _, p := range r.Phases {
		fmt.Fprintf(out, "%s: %.1fs, strata %.1f CPU-s, generator %.1f CPU-s\n", p.Name, p.Seconds, p.StrataCPUSeconds, p.GeneratorCPU)
		if p.BFirstError != "" {
			fmt.Fprintf(out, "  first failed push of B: %s\n", p.BFirstError)
		}
		if p.A != nil {
			fmt.Fprintf(out, "  tenant A flooded %.1fs (from %s before B's phase); its limit allows %.0f samples/s over that time with the burst (%s)\n",
				p.A.Seconds, formatSeconds(p.A.Seconds-p.Seconds), r.aAllowed(p.A.Seconds), r.burstNote())
			if p.A.FirstOther != "" {
				fmt.Fprintf(out, "  first push of A answered neither 2xx nor 429: %s\n", p.A.FirstOther)
			}
		}
	}
	t := figureTable[*noisyPhase]{results: r.Phases, figures: noisyFigures(r)}
	for _, p := range r.Phases {
		t.columns = append(t.columns, p.Name)
	}
	if len(r.Phases) == 2 {
		t.ratio = []int{1, 0}
	}
	t.print(out)
	for _, line := range r.verdicts() {
		fmt.Fprintln(out, line)
	}
}

// aAllowed is what tenant A's limit lets through on average over a flood
// of seconds that starts with full buckets.
func (r *noisyResult) aAllowed(seconds float64) float64 {
	return r.ARate + float64(r.ABurst*max(1, r.Distributors))/max(seconds, 1e-9)
}

func (r *noisyResult) burstNote() string {
	if r.Distributors > 1 {
		return fmt.Sprintf("one burst in each of %d distributors", r.Distributors)
	}
	return "one burst"
}

// verdicts are the report's closing lines.
func (r *noisyResult) verdicts() []string {
	var failed, sent int
	for _, p := range r.Phases {
		failed += p.BFailed
		sent += p.BSent
	}
	out := []string{fmt.Sprintf("tenant B pushes failed: %d of %d (must be 0): %s", failed, sent, verdict(failed == 0 && sent > 0, "FAIL"))}
	if len(r.Phases) == 2 {
		out = append(out, fmt.Sprintf("tenant B p99 with A / p99 solo: %.2f (target <= %g): %s", r.P99Ratio, noisyP99Target, verdict(r.P99Ratio > 0 && r.P99Ratio <= noisyP99Target, "MISS")))
		if a := r.Phases[1].A; a != nil && a.Limited == 0 {
			out = append(out, "note: tenant A never got 429: it did not exceed its limit, so the run says nothing about isolation")
		}
	}
	return out
}

// verdict is PASS, or otherwise: FAIL for a correctness check, MISS for a
// target.
func verdict(ok bool, otherwise string) string {
	if ok {
		return "PASS"
	}
	return otherwise
}

func formatSeconds(s float64) string { return fmt.Sprintf("%.1fs", max(0, s)) }
