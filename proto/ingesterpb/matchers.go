package ingesterpb

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// FromMatchers converts PromQL matchers to their wire form; every process
// that sends matchers (querier to ingesters and store-gateways) uses it.
func FromMatchers(ms []*labels.Matcher) []*LabelMatcher {
	out := make([]*LabelMatcher, len(ms))
	for i, m := range ms {
		var t LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = LabelMatcher_NRE
		default:
			panic(fmt.Sprintf("BUG: unknown matcher type %d", m.Type))
		}
		out[i] = &LabelMatcher{Type: t, Name: m.Name, Value: m.Value}
	}
	return out
}

// ToMatchers converts wire matchers back, compiling regular expressions;
// the error (an unknown type, a bad regexp) is the sender's fault and the
// caller reports it as bad input. No matchers give nil.
func ToMatchers(pms []*LabelMatcher) ([]*labels.Matcher, error) {
	if len(pms) == 0 {
		return nil, nil
	}
	ms := make([]*labels.Matcher, 0, len(pms))
	for _, pm := range pms {
		var t labels.MatchType
		switch pm.GetType() {
		case LabelMatcher_EQ:
			t = labels.MatchEqual
		case LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case LabelMatcher_RE:
			t = labels.MatchRegexp
		case LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, fmt.Errorf("unknown matcher type %d for label %q", pm.GetType(), pm.GetName())
		}
		m, err := labels.NewMatcher(t, pm.GetName(), pm.GetValue())
		if err != nil {
			return nil, fmt.Errorf("invalid matcher %s%s%q: %v", pm.GetName(), t, pm.GetValue(), err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}
