package ruler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/rulerpb"
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

func toAPIAlerts(as []*rulerpb.AlertState) []*apiAlert {
	out := make([]*apiAlert, len(as))
	for i, a := range as {
		activeAt := fromUnixNano(a.GetActiveAtNs())
		out[i] = &apiAlert{
			Labels: fromPBLabels(a.GetLabels()), Annotations: fromPBLabels(a.GetAnnotations()), State: a.GetState(),
			ActiveAt: &activeAt, Value: strconv.FormatFloat(a.GetValue(), 'e', -1, 64),
		}
		if ns := a.GetKeepFiringSinceNs(); ns != 0 {
			since := fromUnixNano(ns)
			out[i].KeepFiringSince = &since
		}
	}
	return out
}

// groupView is one rule group as the API shows it: evaluated by a ruler
// that answered (st), or only stored (def: its ruler did not answer, or
// none has loaded it yet).
type groupView struct {
	file, name string
	st         *rulerpb.RuleGroupState
	def        rulefmt.RuleGroup
}

// views returns the asked tenant's rule groups sorted by namespace and
// name: the ones a ruler answered for with their state (gather, narrowed
// by req's filters; the caller filters again), the others from the last
// listing of the store; and the warnings naming the rulers that did not
// answer.
func (r *Ruler) views(ctx context.Context, req *rulerpb.RulesRequest) ([]groupView, annotations.Annotations) {
	got := r.gatherShared(ctx, req) // shared: read only
	r.mu.Lock()
	stored := r.all[req.GetTenant()]
	r.mu.Unlock()
	var out []groupView
	listed := map[string]bool{}
	for ns, gs := range stored {
		for _, sg := range gs {
			key := rules.GroupKey(ns, sg.group.Name)
			out = append(out, groupView{file: ns, name: sg.group.Name, def: sg.group, st: got.groups[key]})
			listed[key] = true
		}
	}
	// Evaluated but not in this ruler's listing yet (uploaded through
	// another ruler since its last poll).
	for key, st := range got.groups {
		if !listed[key] {
			out = append(out, groupView{file: st.GetNamespace(), name: st.GetName(), st: st})
		}
	}
	slices.SortFunc(out, func(a, b groupView) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out, maps.Clone(got.warnings)
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
	views, warnings := r.views(req.Context(), &rulerpb.RulesRequest{
		Tenant: tenantID, RuleGroup: req.Form["rule_group[]"], File: req.Form["file[]"], RuleName: req.Form["rule_name[]"],
		Type: typ, ExcludeAlerts: excludeAlerts,
	})
	for _, v := range views {
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
	return promapi.Result{Data: res, Warnings: warnings}
}

func (r *Ruler) apiGroup(v groupView, matcherSets [][]*labels.Matcher, names map[string]bool, typ string, excludeAlerts bool) *apiRuleGroup {
	returnAlerts, returnRecording := typ == "" || typ == "alert", typ == "" || typ == "record"
	ag := &apiRuleGroup{Name: v.name, File: v.file, Rules: []any{}}
	if v.st == nil {
		// No ruler answered for it: its definition, state unknown.
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
	st := v.st
	ag.Interval, ag.Limit = st.GetIntervalSeconds(), int(st.GetLimit())
	ag.EvaluationTime, ag.LastEvaluation = st.GetEvaluationSeconds(), fromUnixNano(st.GetLastEvaluationNs())
	for _, rs := range st.GetRules() {
		lbls := fromPBLabels(rs.GetLabels())
		if len(names) > 0 && !names[rs.GetAlert()+rs.GetRecord()] || !matchesAny(matcherSets, lbls) {
			continue
		}
		switch {
		case rs.GetAlert() != "":
			if !returnAlerts {
				continue
			}
			var alerts []*apiAlert
			if !excludeAlerts {
				alerts = toAPIAlerts(rs.GetAlerts())
			}
			ag.Rules = append(ag.Rules, apiAlertingRule{
				State: rs.GetState(), Name: rs.GetAlert(), Query: rs.GetQuery(),
				Duration: rs.GetDurationSeconds(), KeepFiringFor: rs.GetKeepFiringForSeconds(),
				Labels: lbls, Annotations: fromPBLabels(rs.GetAnnotations()), Alerts: alerts,
				Health: rules.RuleHealth(rs.GetHealth()), LastError: rs.GetLastError(),
				EvaluationTime: rs.GetEvaluationSeconds(), LastEvaluation: fromUnixNano(rs.GetLastEvaluationNs()),
				Type: "alerting",
			})
		default:
			if !returnRecording {
				continue
			}
			ag.Rules = append(ag.Rules, apiRecordingRule{
				Name: rs.GetRecord(), Query: rs.GetQuery(), Labels: lbls,
				Health: rules.RuleHealth(rs.GetHealth()), LastError: rs.GetLastError(),
				EvaluationTime: rs.GetEvaluationSeconds(), LastEvaluation: fromUnixNano(rs.GetLastEvaluationNs()),
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
// groups, from every ruler that answered.
func (r *Ruler) listAlerts(req *http.Request, tenantID string) promapi.Result {
	alerts := []*apiAlert{}
	views, warnings := r.views(req.Context(), &rulerpb.RulesRequest{Tenant: tenantID, Type: "alert"})
	for _, v := range views {
		for _, rs := range v.st.GetRules() {
			alerts = append(alerts, toAPIAlerts(rs.GetAlerts())...)
		}
	}
	return promapi.Result{Data: &alertDiscovery{Alerts: alerts}, Warnings: warnings}
}
