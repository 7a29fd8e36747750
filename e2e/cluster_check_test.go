package e2e

import (
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// TestClusterCheck: the exactly-once check of the cluster tests finds gaps,
// duplicates, wrong values and samples never sent.
func TestClusterCheck(t *testing.T) {
	const base = 1_000_000
	// full returns every series with rounds 0..n-1, edit applied to series 7.
	full := func(n int, edit func([]point) []point) []series {
		var out []series
		for s := range clusterSeries {
			var pts []point
			for k := range n {
				pts = append(pts, point{T: base + int64(k)*clusterStep, V: clusterValue(k, s)})
			}
			if s == 7 && edit != nil {
				pts = edit(pts)
			}
			out = append(out, series{Labels: labels.FromStrings("series", strconv.Itoa(s)), Points: pts})
		}
		return out
	}
	for _, tc := range []struct {
		name             string
		got              []series
		acked, attempted int
		wantProblem      string
	}{
		{"exact", full(10, nil), 10, 10, ""},
		{"unacknowledged round there", full(11, nil), 10, 11, ""},
		{"unacknowledged round missing", full(10, nil), 10, 11, ""},
		{"gap", full(10, func(p []point) []point { return append(p[:4:4], p[5:]...) }), 10, 10, "series 7: acknowledged rounds 4..4 missing"},
		{"missing at the end", full(10, func(p []point) []point { return p[:8] }), 10, 10, "series 7: acknowledged rounds 8..9 missing at the end"},
		{"duplicate", full(10, func(p []point) []point { return append(p[:5:5], append([]point{p[4]}, p[5:]...)...) }), 10, 10, "series 7: round 4 twice or out of order"},
		{"wrong value", full(10, func(p []point) []point { p[3].V++; return p }), 10, 10, "series 7 round 3: value"},
		{"never sent", full(12, nil), 10, 11, "sample at 1000110 was never sent"},
		{"between rounds", full(10, func(p []point) []point { p[9].T++; return p }), 10, 10, "was never sent"},
		{"series missing", full(10, nil)[1:], 10, 10, "199 series, want 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := clusterCheck(tc.got, base, tc.acked, tc.attempted)
			if tc.wantProblem == "" {
				require.Empty(t, problems)
				return
			}
			require.NotEmpty(t, problems)
			require.Contains(t, problems[0], tc.wantProblem)
		})
	}
}
