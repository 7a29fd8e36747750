package ruler

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct{ name, in, wantErr string }{
		{"ok", "team-a rules", ""},
		{"unicode", "règles ✓", ""},
		{"empty", "", "namespace name is empty"},
		{"dot", ".", `namespace name "." is not allowed`},
		{"dot dot", "..", `namespace name ".." is not allowed`},
		{"slash", "a/b", "contains '/'"},
		{"traversal", "../../etc", "contains '/'"},
		{"10 kB", strings.Repeat("n", 10_000), "namespace name is 10000 bytes long, limit 256"},
		{"control", "a\nb", "control character"},
		{"not utf-8", "a\xffb", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkName("namespace", tc.in)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorAs(t, err, new(*BadInputError))
		})
	}
}

func TestParseGroup(t *testing.T) {
	c := newChecker(nil)
	for _, tc := range []struct{ name, in, wantErr string }{
		{"recording and alerting", "name: g\ninterval: 30s\nlimit: 10\nquery_offset: 1m\nlabels: {team: a}\nrules:\n- record: a:b\n  expr: sum(up)\n- alert: A\n  expr: up == 0\n  for: 1m\n  keep_firing_for: 5m\n  annotations: {s: '{{ $value }}'}\n", ""},
		{"empty body", "", "no rule group"},
		{"malformed", "name: [g\n", "parse rule group"},
		{"not a mapping", "- a\n- b\n", "parse rule group"},
		{"unknown field", "name: g\nrulez: []\n", "field rulez not found"},
		{"bad expression", "name: g\nrules:\n- record: r\n  expr: sum(\n", `group "g", rule 1, "r": could not parse expression`},
		{"second rule bad", "name: g\nrules:\n- record: r\n  expr: up\n- alert: A\n  expr: 'up ==='\n", `rule 2, "A"`},
		{"bad template", "name: g\nrules:\n- alert: A\n  expr: up\n  annotations: {x: '{{ .Foo'}\n", `rule 1, "A"`},
		{"record and alert", "name: g\nrules:\n- record: r\n  alert: A\n  expr: up\n", "only one of 'record' and 'alert' must be set"},
		{"no expression", "name: g\nrules:\n- record: r\n", "field 'expr' must be set in rule"},
		{"no group name", "rules: []\n", "group name is empty"},
		{"hostile group name", "name: ../x\nrules: []\n", "contains '/'"},
		{"two documents", "name: g\nrules: []\n---\nname: h\nrules: []\n", "more than one YAML document"},
		{"too large", "name: g\nrules: []\n#" + strings.Repeat("x", maxGroupBytes), "limit 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.parseGroup([]byte(tc.in))
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorAs(t, err, new(*BadInputError))
		})
	}
}

func TestCheckLimits(t *testing.T) {
	var l limits.Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	l.RulerMaxRuleGroupsPerTenant, l.RulerMaxRulesPerRuleGroup, l.RulerMinEvaluationInterval = 2, 2, 10*time.Second
	rules := func(n int) []rulefmt.Rule { return make([]rulefmt.Rule, n) }
	have := Namespaces{"ns": {{Name: "a"}, {Name: "b"}}}
	for _, tc := range []struct {
		name    string
		g       rulefmt.RuleGroup
		ns      string
		wantErr string
	}{
		{"replace within limits", rulefmt.RuleGroup{Name: "a", Rules: rules(2)}, "ns", ""},
		{"one group too many", rulefmt.RuleGroup{Name: "c"}, "ns", "the tenant has 2 rule groups, limit 2 (-ruler.max-rule-groups-per-tenant, override ruler_max_rule_groups_per_tenant)"},
		{"same name elsewhere is new", rulefmt.RuleGroup{Name: "a"}, "other", "limit 2"},
		{"too many rules", rulefmt.RuleGroup{Name: "a", Rules: rules(3)}, "ns", `group "a" has 3 rules, limit 2 (-ruler.max-rules-per-rule-group, override ruler_max_rules_per_rule_group)`},
		{"interval too short", rulefmt.RuleGroup{Name: "a", Interval: model.Duration(time.Second)}, "ns", `group "a" has interval 1s, minimum 10s (-ruler.min-evaluation-interval, override ruler_min_evaluation_interval)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkLimits(tc.g, tc.ns, have, &l)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

// TestGroupToken pins the placement of rule groups on the ruler ring:
// changing it moves every group of a running cluster.
func TestGroupToken(t *testing.T) {
	require.Equal(t, uint32(0x3c8a99be), groupToken("team-a", "ml", "accuracy"))
}
