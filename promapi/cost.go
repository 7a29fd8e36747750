package promapi

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// ExprLimits bound what a PromQL expression may cost before it is
// evaluated, for every server of the API (querier, and later the
// query-frontend and the ruler). Two costs escape the engine's own
// -querier.max-samples:
//
//   - parsing: Prometheus' parser takes time quadratic in the number of
//     operators and parentheses (a 16 KB `1+1+…` takes 0.3 s, a 40 KB one
//     8 s) and cannot be cancelled, so the text is measured first;
//   - subqueries: the engine accumulates a subquery's points per series
//     and counts them against max-samples only when the subquery is done,
//     so `count_over_time(vector(1)[30d:1ms])` (2.6 billion points) grew a
//     process to 23.7 GB before any check. As Cortex does, a subquery's
//     range divided by its step is bounded.
type ExprLimits struct {
	MaxBytes            int           // length of the expression text; 0: none
	MaxOperators        int           // operators and parentheses outside string literals; 0: none
	MaxSubquerySteps    int64         // a subquery's range / step; 0: none
	DefaultSubqueryStep time.Duration // the step of `[1h:]`: the default evaluation interval
	// Flags name the flag of each limit in refusals.
	BytesFlag, OperatorsFlag, SubqueryStepsFlag string
}

// Error ids of the refusals.
const (
	idQueryTooLong         = "strata-query-too-long"
	idQueryTooComplex      = "strata-query-too-complex"
	idSubqueryTooManySteps = "strata-subquery-too-many-steps"
)

// CheckText refuses, before parsing, an expression longer than MaxBytes or
// with more than MaxOperators operators and parentheses. It is linear in
// the text and allocates nothing.
func (l ExprLimits) CheckText(q string) *Error {
	if l.MaxBytes > 0 && len(q) > l.MaxBytes {
		return BadData(fmt.Errorf("the query is %d bytes long, limit %d (%s) [%s]", len(q), l.MaxBytes, l.BytesFlag, idQueryTooLong))
	}
	if l.MaxOperators <= 0 {
		return nil
	}
	if n := countOperators(q); n > l.MaxOperators {
		return BadData(fmt.Errorf("the query has %d operators and parentheses, limit %d (%s): split it into several queries or recording rules [%s]", n, l.MaxOperators, l.OperatorsFlag, idQueryTooComplex))
	}
	return nil
}

// countOperators counts what makes the parser chain or nest: binary
// operators (+ - * / % ^, comparisons, and/or/unless) and parentheses,
// outside string literals, comments and label matchers ({...}). A
// matcher's = or != is not counted: matchers do not chain.
func countOperators(q string) int {
	n := 0
	var quote byte // the open string literal's quote; 0: none
	braces := 0    // depth of { }: matchers
	for i := 0; i < len(q); i++ {
		c := q[i]
		if quote != 0 {
			switch {
			case c == '\\' && quote != '`':
				i++ // the escaped character
			case c == quote:
				quote = 0
			}
			continue
		}
		switch {
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '#': // a comment runs to the end of the line
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '{':
			braces++
		case c == '}':
			braces = max(0, braces-1)
		case braces > 0:
		case c == '(' || c == '+' || c == '-' || c == '*' || c == '/' || c == '%' || c == '^' || c == '<' || c == '>':
			n++
		case (c == '=' || c == '!') && i+1 < len(q) && q[i+1] == '=':
			n++
			i++
		case isIdentStart(c) && (i == 0 || !isIdentChar(q[i-1])):
			j := i
			for j < len(q) && isIdentChar(q[j]) {
				j++
			}
			switch q[i:j] {
			case "and", "or", "unless":
				n++
			}
			i = j - 1
		}
	}
	return n
}

func isIdentStart(c byte) bool { return c == '_' || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' || c == ':' }

// CheckSubqueries refuses an expression with a subquery whose range divided
// by its step is more than MaxSubquerySteps.
func (l ExprLimits) CheckSubqueries(expr parser.Expr) *Error {
	if l.MaxSubquerySteps <= 0 {
		return nil
	}
	var refused *Error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		sq, ok := node.(*parser.SubqueryExpr)
		if !ok || refused != nil {
			return nil
		}
		step := sq.Step
		if step <= 0 {
			step = l.DefaultSubqueryStep
		}
		if step <= 0 {
			return nil
		}
		if steps := int64(sq.Range / step); steps > l.MaxSubquerySteps {
			refused = BadData(fmt.Errorf("subquery %s evaluates %d steps per point (range %s / step %s), limit %d (%s): use a larger step [%s]",
				parser.Expr(sq).String(), steps, sq.Range, step, l.MaxSubquerySteps, l.SubqueryStepsFlag, idSubqueryTooManySteps))
		}
		return nil
	})
	return refused
}
