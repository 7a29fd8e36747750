package promapi

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestCountOperators(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want int
	}{
		{`up`, 0},
		{`up{job="a",instance!="b",x=~"c|d+",y!~"(e)"}`, 0}, // matchers do not chain
		{`sum by (job) (rate(up[5m]))`, 3},                  // three parentheses
		{`a + b - c * d / e % f ^ g`, 6},                    //
		{`a == b != c < d > e <= f >= g`, 6},                // two-character comparisons count once
		{`a and b or c unless d`, 3},                        // keywords
		{`android or orchid_total`, 1},                      // not inside identifiers
		{`up{job="1+1+1+(((("}`, 0},                         // not in strings
		{"up{job=`a\\`} + 1", 1},                            // raw strings have no escapes
		{`x{a="\"+"} - 1`, 1},                               // escaped quotes stay in the string
		{"up # 1+1+1\n+ 1", 1},                              // comments
		{strings.Repeat("1+", 500) + "1", 500},
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), 300},
	} {
		require.Equal(t, tc.want, countOperators(tc.q), tc.q)
	}
}

func TestExprLimits(t *testing.T) {
	l := ExprLimits{MaxBytes: 100, MaxOperators: 5, MaxSubquerySteps: 1000, DefaultSubqueryStep: time.Minute,
		BytesFlag: "-b", OperatorsFlag: "-o", SubqueryStepsFlag: "-s"}
	for _, tc := range []struct{ name, q, wantErr string }{
		{"ok", `sum(rate(up[5m]))`, ""},
		{"too long", strings.Repeat("a", 101), "the query is 101 bytes long, limit 100 (-b) [strata-query-too-long]"},
		{"too many operators", "1+1+1+1+1+1+1", "the query has 6 operators and parentheses, limit 5 (-o): split it into several queries or recording rules [strata-query-too-complex]"},
		{"subquery within", `max_over_time(up[16h:1m])`, ""},
		{"subquery default step", `max_over_time(up[1d:])`, "subquery up[1d:] evaluates 1440 steps per point (range 24h0m0s / step 1m0s), limit 1000 (-s): use a larger step [strata-subquery-too-many-steps]"},
		{"nested subquery", `max_over_time(rate(up[1h:1s])[1h:1m])`, "subquery up[1h:1s] evaluates 3600 steps"},
		{"tiny step", `count_over_time(vector(1)[30d:1ms])`, "evaluates 2592000000 steps per point"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.CheckText(tc.q)
			if err == nil {
				expr, perr := parser.NewParser(parser.Options{}).ParseExpr(tc.q)
				require.NoError(t, perr)
				err = l.CheckSubqueries(expr)
			}
			if tc.wantErr == "" {
				require.Nil(t, err)
				return
			}
			require.NotNil(t, err)
			require.Equal(t, ErrorBadData, err.Type)
			require.Contains(t, err.Err.Error(), tc.wantErr)
		})
	}
	require.Nil(t, ExprLimits{}.CheckText(strings.Repeat("1+", 10000)+"1"), "zero limits check nothing")
}
