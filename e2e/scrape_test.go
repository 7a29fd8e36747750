package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// dataFor is how much scraped data the comparison waits for.
const dataFor = 75 * time.Second

// TestScrapeAndCompare runs Prometheus 2.42 scraping node_exporter, Strata's
// own /metrics and itself every second and remote-writing everything to
// Strata. Once about dataFor of data exist it compares, at one evaluation
// time T a few seconds in the past:
//   - raw samples: {__name__=~".+"}[W] in both, bit for bit;
//   - PromQL: Strata's range queries against Strata's own engine version run
//     here over the raw samples read back from Prometheus.
//
// A second node_exporter stops half way, so that the compared minute holds
// series that end in staleness markers.
//
// Known differences between Prometheus 2.42 and the 3.x engine Strata embeds
// (github.com/prometheus/prometheus v0.315.1), and how the test stays clear
// of them instead of loosening the comparison:
//   - Range selectors: 2.42 includes a sample at exactly T-W (left-closed),
//     3.x excludes it (left-open). W reaches back to before Prometheus
//     started, so no sample sits at T-W; samples exactly there are dropped
//     from the 2.42 side anyway.
//   - Staleness markers: the query API of both hides them, but they change
//     PromQL answers (a series stops at its marker instead of lasting the 5m
//     lookback). The PromQL side therefore loads Prometheus' samples through
//     remote read, which returns the markers, not through the query API.
//   - Engine behaviour (rate extrapolation, histogram_quantile bucket
//     monotonicity fixes, range selector boundaries, ...): PromQL answers
//     are never compared with 2.42's engine, only with v0.315.1's.
//   - The last samples of a target that goes away may differ in staleness
//     handling: nothing goes away before T here, and only data up to T is
//     compared.
func TestScrapeAndCompare(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	procs.LookPathT(t, "prometheus", "prometheus")
	procs.LookPathT(t, "prometheus-node-exporter", "prometheus-node-exporter")

	ne := procs.StartNodeExporterT(t)
	gone := procs.StartNodeExporterT(t) // stopped half way: its series end in staleness markers
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin})
	started := time.Now()
	prom := procs.StartPrometheusT(t, procs.PrometheusConfig{
		ScrapeInterval: time.Second,
		Jobs: []procs.ScrapeJob{
			{Name: "node", Targets: []string{ne.Addr}},
			{Name: "node-gone", Targets: []string{gone.Addr}},
			{Name: "strata", Targets: []string{s.HTTPAddr}},
		},
		ScrapeSelf:     true,
		RemoteWriteURL: s.URL + "/api/v1/push",
	})
	promAPI, strataAPI := newClient(prom.URL), newClient(s.URL)

	// Wait for dataFor of scrapes in Prometheus; stop the "node-gone"
	// exporter a little before the middle of the compared minute.
	ctx, cancel := context.WithTimeout(context.Background(), dataFor+time.Minute)
	defer cancel()
	waitScrapes := func(want int) {
		t.Helper()
		poll(ctx, t, "Prometheus' scrapes", 0, time.Second, func(ctx context.Context) (bool, string) {
			r, err := promAPI.query(ctx, `min(count_over_time(up{job="node"}[10m]))`, time.Now())
			if err != nil {
				return false, err.Error()
			}
			if len(r.Series) != 1 || len(r.Series[0].Points) != 1 {
				return false, "no scrapes yet"
			}
			n := int(r.Series[0].Points[0].V)
			return n >= want, fmt.Sprintf("%d of %d scrapes", n, want)
		})
	}
	waitScrapes(int(dataFor/time.Second) / 2)
	require.NoError(t, gone.Stop(10*time.Second))
	waitScrapes(int(dataFor / time.Second))
	r, err := promAPI.query(ctx, `up`, time.Now())
	require.NoError(t, err)
	require.Len(t, r.Series, 4, "four scrape jobs")
	for _, s := range r.Series {
		want := 1.0
		if s.Labels.Get("job") == "node-gone" {
			want = 0
		}
		require.Equal(t, want, s.Points[0].V, "up of %s", s.Labels)
	}

	// T: a few seconds ago, so every scrape stamped at or before T has been
	// appended in Prometheus. W reaches back to before Prometheus started.
	evalT := time.Now().Add(-3 * time.Second).Truncate(time.Second)
	window := (evalT.Sub(started) + 30*time.Second).Truncate(time.Second)

	t.Run("raw samples", func(t *testing.T) { compareRaw(t, promAPI, strataAPI, evalT, window) })
	t.Run("promql", func(t *testing.T) { comparePromQL(t, prom.URL, strataAPI, evalT, evalT.Add(-window)) })
}

// compareRaw compares {__name__=~".+"}[window] at evalT in Prometheus and
// Strata: same series, labels, timestamps and float64 bits. Strata may still
// be receiving the last batches, so it polls until equal or the deadline.
func compareRaw(t *testing.T, promAPI, strataAPI *client, evalT time.Time, window time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := `{__name__=~".+"}[` + strconv.Itoa(int(window/time.Second)) + `s]`
	want, err := promAPI.query(ctx, q, evalT)
	require.NoError(t, err)
	require.Equal(t, "matrix", want.Type)
	// 2.42's window is left-closed, 3.x's left-open: drop a sample at exactly T-W.
	lo := evalT.Add(-window).UnixMilli()
	var samples int
	for i := range want.Series {
		ps := want.Series[i].Points
		if len(ps) > 0 && ps[0].T == lo {
			want.Series[i].Points = ps[1:]
		}
		samples += len(want.Series[i].Points)
	}
	require.Greater(t, len(want.Series), 100, "Prometheus holds too few series")
	t.Logf("Prometheus: %d series, %d samples in %s before %s", len(want.Series), samples, window, evalT.Format(time.RFC3339))

	poll(ctx, t, "Strata's raw samples equal to Prometheus'", 0, time.Second, func(ctx context.Context) (bool, string) {
		got, err := strataAPI.query(ctx, q, evalT)
		if err != nil {
			return false, err.Error()
		}
		diff := diffRaw(want, got)
		return diff == "", "Strata differs: " + diff
	})
}

// diffRaw describes how got differs from want, in at most a few lines.
func diffRaw(want, got apiResult) string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < 10 {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	if want.Type != got.Type {
		add("result type %s, want %s", got.Type, want.Type)
	}
	gotByKey := map[string]series{}
	for _, s := range got.Series {
		gotByKey[s.Labels.String()] = s
	}
	missing, extra, differ := 0, 0, 0
	for _, w := range want.Series {
		key := w.Labels.String()
		g, ok := gotByKey[key]
		delete(gotByKey, key)
		if !ok {
			missing++
			add("missing series %s (%d samples)", key, len(w.Points))
			continue
		}
		if d := diffPoints(w.Points, g.Points, sameBits); d != "" {
			differ++
			add("series %s: %s", key, d)
		}
	}
	for key, g := range gotByKey {
		extra++
		add("unexpected series %s (%d samples)", key, len(g.Points))
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("%d series missing, %d unexpected, %d differ of %d:\n%s", missing, extra, differ, len(want.Series), strings.Join(out, "\n"))
}

// diffPoints describes the first difference between two point lists.
func diffPoints(want, got []point, eq func(a, b float64) bool) string {
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		if w.T != g.T {
			return fmt.Sprintf("point %d at %d, want %d (%d points, want %d)", i, g.T, w.T, len(got), len(want))
		}
		if !eq(w.V, g.V) {
			return fmt.Sprintf("point %d at %d is %v (%#x), want %v (%#x)", i, w.T, g.V, floatBits(g.V), w.V, floatBits(w.V))
		}
	}
	if len(want) != len(got) {
		return fmt.Sprintf("%d points, want %d", len(got), len(want))
	}
	return ""
}
