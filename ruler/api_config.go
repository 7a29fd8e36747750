package ruler

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/strata-metrics/strata/promapi"
)

// The rule configuration API (Cortex's and Mimir's, which Grafana's
// alerting UI and mimirtool speak): YAML in and out, 202 for a change,
// 404 for what does not exist, 400 with Prometheus' error JSON for input
// that can never be stored. Messages of the 404s are Mimir's: Grafana
// tells "no rules" from "no ruler" by them.

const (
	msgNoRuleGroups      = "no rule groups found"
	msgGroupNotFound     = "group does not exist"
	msgNamespaceNotFound = "group namespace does not exist"
)

// configHandler resolves the tenant and runs f, which writes the answer
// or returns the error to answer with (respondStoreError).
func (r *Ruler) configHandler(f func(w http.ResponseWriter, req *http.Request, tenantID string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tenantID, err := r.deps.Tenants.FromHTTP(req)
		if err != nil {
			promapi.RespondError(w, r.log, promapi.TenantError(err), nil)
			return
		}
		r.touch(tenantID)
		if err := f(w, req, tenantID); err != nil {
			r.respondStoreError(w, err)
		}
	})
}

// notFound is a 404 of the config API, with Mimir's message.
type notFound string

func (e notFound) Error() string { return string(e) }

func (r *Ruler) touch(tenantID string) {
	if r.deps.TenantLabels != nil {
		r.deps.TenantLabels.Value(tenantID)
	}
}

func (r *Ruler) respondStoreError(w http.ResponseWriter, err error) {
	var bad *BadInputError
	var missing notFound
	switch {
	case errors.As(err, &missing):
		http.Error(w, string(missing), http.StatusNotFound)
	case errors.As(err, &bad):
		promapi.RespondError(w, r.log, promapi.BadData(err), nil)
	case errors.Is(err, ErrReadOnly):
		promapi.RespondError(w, r.log, &promapi.Error{Type: promapi.ErrorBadData, Code: http.StatusMethodNotAllowed, Err: err}, nil)
	default:
		promapi.RespondError(w, r.log, &promapi.Error{Type: promapi.ErrorInternal, Err: err}, nil)
	}
}

func writeYAML(w http.ResponseWriter, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode rules: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// respondAccepted is Mimir's answer to a change.
func respondAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"success","data":null,"errorType":"","error":""}`))
}

// pathName returns the request's path value key, checked as a name.
func pathName(req *http.Request, key, kind string) (string, error) {
	v := req.PathValue(key)
	return v, checkName(kind, v)
}

// sortedNamespaces renders ns as YAML keeps it: namespaces in order.
func sortedNamespaces(ns Namespaces) *yaml.Node {
	keys := make([]string, 0, len(ns))
	for k := range ns {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		var v yaml.Node
		if err := v.Encode(ns[k]); err != nil {
			continue
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &v)
	}
	return n
}

// GET /config/v1/rules
func (r *Ruler) configList(w http.ResponseWriter, req *http.Request, tenantID string) error {
	ns, err := r.deps.Store.Tenant(req.Context(), tenantID)
	if err != nil {
		return err
	}
	if len(ns) == 0 {
		return notFound(msgNoRuleGroups)
	}
	writeYAML(w, sortedNamespaces(ns))
	return nil
}

// namespace returns the request's {namespace} and its groups, notFound
// with msg when it has none.
func (r *Ruler) namespace(req *http.Request, tenantID, msg string) (string, []rulefmt.RuleGroup, error) {
	namespace, err := pathName(req, "namespace", "namespace")
	if err != nil {
		return "", nil, err
	}
	ns, err := r.deps.Store.Tenant(req.Context(), tenantID)
	if err != nil {
		return "", nil, err
	}
	if len(ns[namespace]) == 0 {
		return "", nil, notFound(msg)
	}
	return namespace, ns[namespace], nil
}

// GET /config/v1/rules/{namespace}
func (r *Ruler) configGetNamespace(w http.ResponseWriter, req *http.Request, tenantID string) error {
	namespace, groups, err := r.namespace(req, tenantID, msgNoRuleGroups)
	if err != nil {
		return err
	}
	writeYAML(w, sortedNamespaces(Namespaces{namespace: groups}))
	return nil
}

// GET /config/v1/rules/{namespace}/{group}
func (r *Ruler) configGetGroup(w http.ResponseWriter, req *http.Request, tenantID string) error {
	group, err := pathName(req, "group", "group")
	if err != nil {
		return err
	}
	_, groups, err := r.namespace(req, tenantID, msgGroupNotFound)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Name == group {
			writeYAML(w, &g)
			return nil
		}
	}
	return notFound(msgGroupNotFound)
}

// POST /config/v1/rules/{namespace}: one rule group in YAML, created or
// replaced. Nothing is stored unless all of it is valid and within the
// tenant's limits.
func (r *Ruler) configSetGroup(w http.ResponseWriter, req *http.Request, tenantID string) error {
	namespace, err := pathName(req, "namespace", "namespace")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxGroupBytes+1))
	if err != nil {
		promapi.RespondError(w, r.log, promapi.BadData(fmt.Errorf("read body: %w", err)), nil)
		return nil
	}
	g, err := r.checker.parseGroup(body)
	if err != nil {
		return err
	}
	r.uploadMu.Lock()
	defer r.uploadMu.Unlock()
	ns, err := r.deps.Store.Tenant(req.Context(), tenantID)
	if err != nil {
		return err
	}
	if err := checkLimits(g, namespace, ns, r.deps.Limits.For(tenantID)); err != nil {
		return err
	}
	if err := r.deps.Store.SetGroup(req.Context(), tenantID, namespace, g); err != nil {
		return err
	}
	r.syncSoon()
	respondAccepted(w)
	return nil
}

// DELETE /config/v1/rules/{namespace}
func (r *Ruler) configDeleteNamespace(w http.ResponseWriter, req *http.Request, tenantID string) error {
	namespace, groups, err := r.namespace(req, tenantID, msgNamespaceNotFound)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if err := r.deps.Store.DeleteGroup(req.Context(), tenantID, namespace, g.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	r.syncSoon()
	respondAccepted(w)
	return nil
}

// DELETE /config/v1/rules/{namespace}/{group}
func (r *Ruler) configDeleteGroup(w http.ResponseWriter, req *http.Request, tenantID string) error {
	namespace, err := pathName(req, "namespace", "namespace")
	if err != nil {
		return err
	}
	group, err := pathName(req, "group", "group")
	if err != nil {
		return err
	}
	err = r.deps.Store.DeleteGroup(req.Context(), tenantID, namespace, group)
	if errors.Is(err, ErrNotFound) {
		return notFound(msgGroupNotFound)
	}
	if err != nil {
		return err
	}
	r.syncSoon()
	respondAccepted(w)
	return nil
}

// syncSoon asks Run to reread the store now, so that a change made here
// is evaluated (and listed by /api/v1/rules) without waiting for the poll.
func (r *Ruler) syncSoon() {
	select {
	case r.resync <- struct{}{}:
	default:
	}
}

// Router is where RegisterRoutes mounts the APIs (*server.Server).
type Router interface {
	Handle(pattern, route string, h http.Handler)
}

// RegisterRoutes mounts GET /api/v1/rules and /api/v1/alerts (Prometheus'
// API, also under /prometheus, Mimir's prefix) and the rule configuration
// API /config/v1/rules... (also under /prometheus/config/v1/rules).
func (r *Ruler) RegisterRoutes(rt Router) {
	wrap := func(f func(*http.Request, string) promapi.Result) http.Handler {
		return promapi.Handler(r.log, func(req *http.Request) promapi.Result {
			tenantID, err := r.deps.Tenants.FromHTTP(req)
			if err != nil {
				return promapi.Result{Err: promapi.TenantError(err)}
			}
			r.touch(tenantID)
			return f(req, tenantID)
		})
	}
	flags := promapi.Handler(r.log, func(*http.Request) promapi.Result { return promapi.Result{Data: r.flags()} })
	for _, prefix := range []string{"", "/prometheus"} {
		rt.Handle("GET "+prefix+"/api/v1/rules", "api_v1_rules", wrap(r.listRules))
		rt.Handle("GET "+prefix+"/api/v1/alerts", "api_v1_alerts", wrap(r.listAlerts))
		rt.Handle("GET "+prefix+"/api/v1/status/flags", "api_v1_status_flags", flags)
		// /config/v1/rules is Mimir's path, /rules Cortex's (Grafana's
		// "cortex" subtype).
		for _, base := range []string{prefix + "/config/v1/rules", prefix + "/rules"} {
			rt.Handle("GET "+base, "config_v1_rules", r.configHandler(r.configList))
			rt.Handle("GET "+base+"/{namespace}", "config_v1_rules_namespace", r.configHandler(r.configGetNamespace))
			rt.Handle("POST "+base+"/{namespace}", "config_v1_rules_namespace", r.configHandler(r.configSetGroup))
			rt.Handle("DELETE "+base+"/{namespace}", "config_v1_rules_namespace", r.configHandler(r.configDeleteNamespace))
			rt.Handle("GET "+base+"/{namespace}/{group}", "config_v1_rules_group", r.configHandler(r.configGetGroup))
			rt.Handle("DELETE "+base+"/{namespace}/{group}", "config_v1_rules_group", r.configHandler(r.configDeleteGroup))
		}
	}
}

// flags is the data of /api/v1/status/flags: Prometheus' endpoint, with the
// ruler's flags that are safe to show (not the Alertmanager URLs, which
// may carry credentials). Grafana's alerting takes a data source whose
// buildinfo and flags both answer for one with a rule config API it may
// probe (README, Rules and alerts).
func (r *Ruler) flags() map[string]string {
	return map[string]string{
		"ruler.evaluation-interval": r.cfg.EvaluationInterval.String(),
		"ruler.evaluation-timeout":  r.cfg.EvaluationTimeout.String(),
		"ruler.poll-interval":       r.cfg.PollInterval.String(),
		"ruler.rule-path":           r.cfg.RulePath,
	}
}
