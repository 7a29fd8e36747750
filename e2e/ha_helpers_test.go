package e2e

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// haSource says which replica of an HA pair wrote a stored sample.
type haSource int

const (
	haNone     haSource = iota // neither replica has this timestamp and value
	haElected                  // the replica elected first, killed later
	haSurvivor                 // the replica that took over
	haBoth                     // both have it (equal timestamp and bits): undecidable
)

func (s haSource) String() string {
	return [...]string{"neither replica", "elected", "survivor", "both replicas"}[s]
}

// haVerdict is what checkHAStored found.
type haVerdict struct {
	electedRun, survivorRun int   // stored samples of each replica
	lastElected, firstSurv  int64 // ms: the samples either side of the failover
	gap                     int64 // ms: firstSurv - lastElected
	problems                []string
}

// checkHAStored checks the samples Strata stored for one series of an HA
// pair against the raw samples of each replica's own TSDB (all in time
// order, up to the same end):
//   - every stored sample is one replica's sample, timestamp and float64
//     bits equal: nothing invented, nothing merged;
//   - the stored samples are one run of the elected replica followed by one
//     run of the survivor: never both replicas' samples in one window,
//     never back to the elected one;
//   - each run is complete: every sample the replica scraped from the
//     run's first to its last stored sample is stored, and the elected
//     run starts at the elected replica's first sample, the survivor's run
//     ends at the survivor's last sample (no loss besides the failover);
//   - the failover gap, from the last stored sample of the elected replica
//     to the first of the survivor, is at most maxGap.
func checkHAStored(stored, elected, survivor []point, maxGap time.Duration) haVerdict {
	var v haVerdict
	problem := func(format string, args ...any) {
		if len(v.problems) < 10 {
			v.problems = append(v.problems, fmt.Sprintf(format, args...))
		}
	}
	index := func(ps []point) map[int64]float64 {
		m := make(map[int64]float64, len(ps))
		for _, p := range ps {
			m[p.T] = p.V
		}
		return m
	}
	inE, inS := index(elected), index(survivor)
	src := make([]haSource, len(stored))
	for i, p := range stored {
		e, okE := inE[p.T]
		s, okS := inS[p.T]
		okE = okE && sameBits(e, p.V)
		okS = okS && sameBits(s, p.V)
		switch {
		case okE && okS:
			src[i] = haBoth
		case okE:
			src[i] = haElected
		case okS:
			src[i] = haSurvivor
		}
		if src[i] == haNone || src[i] == haBoth {
			problem("stored sample %d (t=%d v=%v) is from %s", i, p.T, p.V, src[i])
		}
	}
	if len(v.problems) > 0 {
		return v
	}
	// One run of each, in this order.
	switchAt := len(stored)
	for i, s := range src {
		if s == haSurvivor {
			switchAt = i
			break
		}
	}
	for i := switchAt; i < len(stored); i++ {
		if src[i] == haElected {
			problem("stored sample %d (t=%d) is the elected replica's, after the survivor's sample %d (t=%d): both replicas' samples interleave",
				i, stored[i].T, switchAt, stored[switchAt].T)
		}
	}
	v.electedRun, v.survivorRun = switchAt, len(stored)-switchAt
	if v.electedRun == 0 {
		problem("no stored sample of the elected replica")
	}
	if v.survivorRun == 0 {
		problem("no stored sample of the survivor: no failover")
	}
	if len(v.problems) > 0 {
		return v
	}
	// Each run complete.
	complete := func(name string, run, local []point, fromFirst, toLast bool) {
		lo, hi := run[0].T, run[len(run)-1].T
		if fromFirst {
			lo = local[0].T
		}
		if toLast {
			hi = local[len(local)-1].T
		}
		want := 0
		inRun := index(run)
		for _, p := range local {
			if p.T < lo || p.T > hi {
				continue
			}
			want++
			if _, ok := inRun[p.T]; !ok {
				problem("the %s replica's sample t=%d is not stored (its stored run spans %d..%d)", name, p.T, run[0].T, run[len(run)-1].T)
			}
		}
		if want != len(run) {
			problem("the %s replica's run has %d stored samples, its TSDB %d in %d..%d", name, len(run), want, lo, hi)
		}
	}
	complete("elected", stored[:switchAt], elected, true, false)
	complete("survivor", stored[switchAt:], survivor, false, true)

	v.lastElected, v.firstSurv = stored[switchAt-1].T, stored[switchAt].T
	v.gap = v.firstSurv - v.lastElected
	if v.gap > maxGap.Milliseconds() {
		problem("failover gap %dms (t=%d..%d), more than %s", v.gap, v.lastElected, v.firstSurv, maxGap)
	}
	return v
}

// onlySeries returns the one series of r (nil points when r is empty) and
// an error when r has more than one.
func onlySeries(r apiResult) (labels.Labels, []point, error) {
	switch len(r.Series) {
	case 0:
		return labels.EmptyLabels(), nil, nil
	case 1:
		return r.Series[0].Labels, r.Series[0].Points, nil
	}
	var ls []string
	for _, s := range r.Series {
		ls = append(ls, s.Labels.String())
	}
	return labels.EmptyLabels(), nil, fmt.Errorf("%d series, want 1: %s", len(r.Series), strings.Join(ls, ", "))
}

// upTo returns the prefix of ps at or before t (ms).
func upTo(ps []point, t int64) []point {
	for i, p := range ps {
		if p.T > t {
			return ps[:i]
		}
	}
	return ps
}

// remoteWriteTrouble returns the lines of a Prometheus log (logfmt) in
// which its remote-write component warns or errs: failed or retried sends,
// non-recoverable errors, dropped samples.
func remoteWriteTrouble(logPath string) ([]string, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil, fmt.Errorf("read prometheus log: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "component=remote") {
			continue
		}
		if strings.Contains(line, "level=warn") || strings.Contains(line, "level=error") {
			out = append(out, line)
		}
	}
	return out, nil
}
