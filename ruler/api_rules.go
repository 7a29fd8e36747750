package ruler

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"

	"github.com/strata-metrics/strata/promapi"
)

// The types below are Prometheus' web/api/v1 answers of /api/v1/rules and
// /api/v1/alerts, field for field (Grafana and every Prometheus client
// read them).

type ruleDiscovery struct {
	RuleGroups     []*apiRuleGroup `json:"groups"`
	GroupNextToken string          `json:"groupNextToken,omitempty"`
}

type apiRuleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

type apiAlertingRule struct {
	State          string           `json:"state"`
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Duration       float64          `json:"duration"`
	KeepFiringFor  float64          `json:"keepFiringFor"`
	Labels         labels.Labels    `json:"labels"`
	Annotations    labels.Labels    `json:"annotations"`
	Alerts         []*apiAlert      `json:"alerts"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

type apiRecordingRule struct {
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Labels         labels.Labels    `json:"labels"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

type alertDiscovery struct {
	Alerts []*apiAlert `json:"alerts"`
}

type apiAlert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

func toAPIAlerts(as []*rules.Alert) []*apiAlert {
	out := make([]*apiAlert, len(as))
	for i, a := range as {
		out[i] = &apiAlert{
			Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			ActiveAt: &a.ActiveAt, Value: strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

// groupView is one rule group as the API shows it: evaluated here (g),
// or only stored (def: evaluated by another ruler, or not yet loaded).
type groupView struct {
	file, name string
	g          *rules.Group
	def        rulefmt.RuleGroup
}

// views returns tenantID's rule groups sorted by namespace and name: the
// ones evaluated here with their state, the others from the last listing
// of the store.
func (r *Ruler) views(tenantID string) []groupView {
	r.mu.Lock()
	defer r.mu.Unlock()
	local := map[string]*rules.Group{}
	if tr := r.tenants[tenantID]; tr != nil {
		for _, g := range tr.mgr.RuleGroups() {
			local[rules.GroupKey(g.File(), g.Name())] = g
		}
	}
	var out []groupView
	for ns, gs := range r.all[tenantID] {
		for _, sg := range gs {
			v := groupView{file: ns, name: sg.group.Name, def: sg.group}
			if g, ok := local[rules.GroupKey(ns, sg.group.Name)]; ok {
				v.g = g
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b groupView) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

func nextToken(file, group string) string {
	h := sha256.Sum256([]byte(file + ";" + group))
	return hex.EncodeToString(h[:])
}

func formSet(vs []string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}

// listRules is GET /api/v1/rules, as Prometheus answers it.
func (r *Ruler) listRules(req *http.Request, tenantID string) promapi.Result {
	names, groupNames, files := formSet(req.Form["rule_name[]"]), formSet(req.Form["rule_group[]"]), formSet(req.Form["file[]"])
	matcherSets, err := promapi.ParseMatchers(r.checker.parser, req.Form["match[]"])
	if err != nil {
		return promapi.Result{Err: promapi.BadData(err)}
	}
	typ := strings.ToLower(req.URL.Query().Get("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		return promapi.Result{Err: promapi.InvalidParam(fmt.Errorf("not supported value %q", typ), "type")}
	}
	excludeAlerts := false
	if v := strings.ToLower(req.URL.Query().Get("exclude_alerts")); v != "" {
		if excludeAlerts, err = strconv.ParseBool(v); err != nil {
			return promapi.Result{Err: promapi.InvalidParam(fmt.Errorf("error converting exclude_alerts: %w", err), "exclude_alerts")}
		}
	}
	maxGroups, token := int64(-1), req.URL.Query().Get("group_next_token")
	if s := req.URL.Query().Get("group_limit"); s != "" {
		if maxGroups, err = strconv.ParseInt(s, 10, 32); err != nil {
			return promapi.Result{Err: promapi.InvalidParam(fmt.Errorf("group_limit needs to be a valid number: %w", err), "group_limit")}
		}
		if maxGroups <= 0 {
			return promapi.Result{Err: promapi.InvalidParam(errors.New("group_limit needs to be greater than 0"), "group_limit")}
		}
	} else if token != "" {
		return promapi.Result{Err: promapi.InvalidParam(errors.New("group_limit needs to be present in order to paginate over the groups"), "group_next_token")}
	}

	res := &ruleDiscovery{RuleGroups: []*apiRuleGroup{}}
	foundToken := false
	for _, v := range r.views(tenantID) {
		if maxGroups > 0 && token != "" && !foundToken {
			if token != nextToken(v.file, v.name) {
				continue
			}
			foundToken = true
		}
		if len(groupNames) > 0 && !groupNames[v.name] || len(files) > 0 && !files[v.file] {
			continue
		}
		ag := r.apiGroup(v, matcherSets, names, typ, excludeAlerts)
		if len(ag.Rules) == 0 {
			continue // every rule filtered out
		}
		if maxGroups > 0 && len(res.RuleGroups) == int(maxGroups) {
			res.GroupNextToken = nextToken(v.file, v.name)
			break
		}
		res.RuleGroups = append(res.RuleGroups, ag)
	}
	if maxGroups > 0 && token != "" && !foundToken {
		return promapi.Result{Err: promapi.InvalidParam(fmt.Errorf("invalid group_next_token '%v'. were rule groups changed?", token), "group_next_token")}
	}
	return promapi.Result{Data: res}
}

func (r *Ruler) apiGroup(v groupView, matcherSets [][]*labels.Matcher, names map[string]bool, typ string, excludeAlerts bool) *apiRuleGroup {
	returnAlerts, returnRecording := typ == "" || typ == "alert", typ == "" || typ == "record"
	ag := &apiRuleGroup{Name: v.name, File: v.file, Rules: []any{}}
	if v.g == nil {
		// Not evaluated here: its definition, state unknown.
		ag.Interval = r.cfg.EvaluationInterval.Seconds()
		if v.def.Interval != 0 {
			ag.Interval = time.Duration(v.def.Interval).Seconds()
		}
		ag.Limit = v.def.Limit
		for _, rl := range v.def.Rules {
			lbls := labels.FromMap(mergeMaps(v.def.Labels, rl.Labels))
			if len(names) > 0 && !names[rl.Alert+rl.Record] || !matchesAny(matcherSets, lbls) {
				continue
			}
			query := rl.Expr
			if e, err := r.checker.parser.ParseExpr(rl.Expr); err == nil {
				query = e.String()
			}
			switch {
			case rl.Alert != "" && returnAlerts:
				ag.Rules = append(ag.Rules, apiAlertingRule{
					State: rules.StateInactive.String(), Name: rl.Alert, Query: query,
					Duration: time.Duration(rl.For).Seconds(), KeepFiringFor: time.Duration(rl.KeepFiringFor).Seconds(),
					Labels: lbls, Annotations: labels.FromMap(rl.Annotations), Alerts: []*apiAlert{},
					Health: rules.HealthUnknown, Type: "alerting",
				})
			case rl.Record != "" && returnRecording:
				ag.Rules = append(ag.Rules, apiRecordingRule{Name: rl.Record, Query: query, Labels: lbls, Health: rules.HealthUnknown, Type: "recording"})
			}
		}
		return ag
	}
	g := v.g
	ag.Interval, ag.Limit = g.Interval().Seconds(), g.Limit()
	ag.EvaluationTime, ag.LastEvaluation = g.GetEvaluationTime().Seconds(), g.GetLastEvaluation()
	for _, rr := range g.Rules(matcherSets...) {
		if len(names) > 0 && !names[rr.Name()] {
			continue
		}
		lastError := ""
		if rr.LastError() != nil {
			lastError = rr.LastError().Error()
		}
		switch rule := rr.(type) {
		case *rules.AlertingRule:
			if !returnAlerts {
				continue
			}
			var alerts []*apiAlert
			if !excludeAlerts {
				alerts = toAPIAlerts(rule.ActiveAlerts())
			}
			ag.Rules = append(ag.Rules, apiAlertingRule{
				State: rule.State().String(), Name: rule.Name(), Query: rule.Query().String(),
				Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(),
				Labels: rule.Labels(), Annotations: rule.Annotations(), Alerts: alerts,
				Health: rule.Health(), LastError: lastError,
				EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
				Type: "alerting",
			})
		case *rules.RecordingRule:
			if !returnRecording {
				continue
			}
			ag.Rules = append(ag.Rules, apiRecordingRule{
				Name: rule.Name(), Query: rule.Query().String(), Labels: rule.Labels(),
				Health: rule.Health(), LastError: lastError,
				EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
				Type: "recording",
			})
		}
	}
	return ag
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// matchesAny is Prometheus' rule filter: no sets, or one set that all
// match lbls.
func matchesAny(sets [][]*labels.Matcher, lbls labels.Labels) bool {
	if len(sets) == 0 {
		return true
	}
	for _, ms := range sets {
		ok := true
		for _, m := range ms {
			if !m.Matches(lbls.Get(m.Name)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// listAlerts is GET /api/v1/alerts: the active alerts of the tenant's
// groups evaluated here.
func (r *Ruler) listAlerts(_ *http.Request, tenantID string) promapi.Result {
	alerts := []*apiAlert{}
	for _, v := range r.views(tenantID) {
		if v.g == nil {
			continue
		}
		for _, ar := range v.g.AlertingRules() {
			alerts = append(alerts, toAPIAlerts(ar.ActiveAlerts())...)
		}
	}
	return promapi.Result{Data: &alertDiscovery{Alerts: alerts}}
}
