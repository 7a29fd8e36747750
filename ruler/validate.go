package ruler

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/limits"
)

// maxNameBytes bounds a namespace or group name: with base64url's 4/3 both
// fit an object key of 1,024 bytes (S3's limit) with the tenant.
const maxNameBytes = 256

// maxGroupBytes bounds an uploaded rule group's YAML.
const maxGroupBytes = 1 << 20

// BadInputError is an upload that can never be stored as it is: 400.
type BadInputError struct{ Msg string }

func (e *BadInputError) Error() string { return e.Msg }

func badInput(format string, args ...any) error {
	return &BadInputError{Msg: fmt.Sprintf(format, args...)}
}

// checkName refuses a namespace or group name that could be mistaken for
// a path or is too long to store: kind is "namespace" or "group".
func checkName(kind, name string) error {
	switch {
	case name == "":
		return badInput("%s name is empty", kind)
	case len(name) > maxNameBytes:
		return badInput("%s name is %d bytes long, limit %d", kind, len(name), maxNameBytes)
	case name == "." || name == "..":
		return badInput("%s name %q is not allowed", kind, name)
	case strings.Contains(name, "/"):
		return badInput("%s name %q contains '/'", kind, name)
	case !utf8.ValidString(name):
		return badInput("%s name is not valid UTF-8", kind)
	case strings.ContainsFunc(name, unicode.IsControl):
		return badInput("%s name %q contains a control character", kind, name)
	}
	return nil
}

// checker parses and validates rule groups with the ruler's PromQL parser.
type checker struct {
	parser parser.Parser
	log    *slog.Logger
}

func newChecker(log *slog.Logger) *checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &checker{parser: parser.NewParser(parser.Options{}), log: log}
}

// parseFile parses a Prometheus rule file, validated as Prometheus does
// (expressions, templates, label names, duplicate groups).
func (c *checker) parseFile(b []byte) (*rulefmt.RuleGroups, error) {
	rgs, errs := rulefmt.Parse(b, false, model.UTF8Validation, c.parser, c.log)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rgs, nil
}

// parseGroup decodes and validates one uploaded rule group (the body of
// POST /config/v1/rules/{namespace}): one YAML document, known fields
// only, every rule's expression and templates parsed. Any problem is a
// *BadInputError naming the rule.
func (c *checker) parseGroup(body []byte) (rulefmt.RuleGroup, error) {
	var g rulefmt.RuleGroup
	if len(body) > maxGroupBytes {
		return g, badInput("rule group is %d bytes long, limit %d", len(body), maxGroupBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		if errors.Is(err, io.EOF) {
			return g, badInput("the body holds no rule group")
		}
		return g, badInput("parse rule group: %v", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return g, badInput("the body holds more than one YAML document; send one rule group")
	}
	if err := checkName("group", g.Name); err != nil {
		return g, err
	}
	// Validate as Prometheus validates a rule file of this one group.
	file, err := yaml.Marshal(&rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
	if err != nil {
		return g, fmt.Errorf("encode rule group: %w", err)
	}
	if _, errs := rulefmt.Parse(file, false, model.UTF8Validation, c.parser, c.log); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = withoutPosition(err)
		}
		return g, badInput("%s", strings.Join(msgs, "; "))
	}
	return g, nil
}

// withoutPosition is a rule error without its line and column, which are
// those of the file parseGroup made, not of the upload.
func withoutPosition(err error) string {
	var re *rulefmt.Error
	if errors.As(err, &re) {
		return fmt.Sprintf("group %q, rule %d, %q: %v", re.Group, re.Rule, re.RuleName, errors.Unwrap(&re.Err))
	}
	return err.Error()
}

// checkLimits refuses g in namespace when it would break the tenant's
// limits l; ns are the tenant's groups now.
func checkLimits(g rulefmt.RuleGroup, namespace string, ns Namespaces, l *limits.Limits) error {
	if max := l.RulerMaxRulesPerRuleGroup; max > 0 && len(g.Rules) > max {
		return badInput("group %q has %d rules, limit %d (-%s, override ruler_max_rules_per_rule_group)", g.Name, len(g.Rules), max, limits.FlagRulerMaxRulesPerGroup)
	}
	if min := l.RulerMinEvaluationInterval; min > 0 && g.Interval != 0 && time.Duration(g.Interval) < min {
		return badInput("group %q has interval %s, minimum %s (-%s, override ruler_min_evaluation_interval)", g.Name, g.Interval, min, limits.FlagRulerMinInterval)
	}
	if max := l.RulerMaxRuleGroupsPerTenant; max > 0 {
		n := 0
		replaces := false
		for name, gs := range ns {
			n += len(gs)
			if name == namespace {
				for _, old := range gs {
					replaces = replaces || old.Name == g.Name
				}
			}
		}
		if !replaces && n+1 > max {
			return badInput("the tenant has %d rule groups, limit %d (-%s, override ruler_max_rule_groups_per_tenant)", n, max, limits.FlagRulerMaxRuleGroups)
		}
	}
	return nil
}
