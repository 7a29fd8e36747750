package ruler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/rulerpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// PeerClients hands out the gRPC clients of other rulers.
type PeerClients interface {
	// Get returns the client of the ruler at addr (its ring address). It
	// is goroutine-safe; the client is shared and may be used at once by
	// several goroutines.
	Get(addr string) (rulerpb.RulerClient, error)
}

// Server returns the ruler's gRPC service, to register on the process'
// gRPC server.
func (r *Ruler) Server() rulerpb.RulerServer { return grpcServer{r: r} }

type grpcServer struct {
	rulerpb.UnimplementedRulerServer
	r *Ruler
}

// Rules implements rulerpb.RulerServer: the state of the asked tenant's
// groups this ruler evaluates, and no other tenant's.
func (s grpcServer) Rules(_ context.Context, req *rulerpb.RulesRequest) (*rulerpb.RulesResponse, error) {
	if err := tenant.Validate(req.GetTenant()); err != nil {
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("rule group states: %v", err))
	}
	if typ := req.GetType(); typ != "" && typ != "alert" && typ != "record" {
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("rule group states: rule type %q, want alert, record or none", typ))
	}
	return &rulerpb.RulesResponse{Groups: s.r.filteredStates(req)}, nil
}

// localStates returns the state of tenantID's groups this ruler evaluates.
func (r *Ruler) localStates(tenantID string) []*rulerpb.RuleGroupState {
	return r.filteredStates(&rulerpb.RulesRequest{Tenant: tenantID})
}

// filteredStates returns the state of the asked tenant's groups this
// ruler evaluates, narrowed by the request's filters: the groups and
// rules asked for, their alerts unless excluded.
func (r *Ruler) filteredStates(req *rulerpb.RulesRequest) []*rulerpb.RuleGroupState {
	r.mu.Lock()
	tr := r.tenants[req.GetTenant()]
	r.mu.Unlock()
	if tr == nil {
		return nil
	}
	groups, files, keep := formSet(req.GetRuleGroup()), formSet(req.GetFile()), keepRule(req)
	gs := tr.mgr.RuleGroups()
	out := make([]*rulerpb.RuleGroupState, 0, len(gs))
	for _, g := range gs {
		if len(groups) > 0 && !groups[g.Name()] || len(files) > 0 && !files[g.File()] {
			continue
		}
		out = append(out, groupState(g, keep, !req.GetExcludeAlerts()))
	}
	return out
}

// keepRule is the test of whether req asks for a rule, by its name and
// type.
func keepRule(req *rulerpb.RulesRequest) func(rules.Rule) bool {
	names := formSet(req.GetRuleName())
	return func(rr rules.Rule) bool {
		if len(names) > 0 && !names[rr.Name()] {
			return false
		}
		switch rr.(type) {
		case *rules.AlertingRule:
			return req.GetType() != "record"
		default:
			return req.GetType() != "alert"
		}
	}
}

// gathered is the state of a tenant's evaluated groups, by
// rules.GroupKey, and the rulers that did not answer.
type gathered struct {
	groups   map[string]*rulerpb.RuleGroupState
	warnings annotations.Annotations
}

// gatherShared is gather, shared by identical concurrent calls: the
// first one's answer goes to those that ask while it runs. The answer is
// read-only. The calls are bounded by -ruler.peer-timeout, not by the
// first caller's context.
func (r *Ruler) gatherShared(ctx context.Context, req *rulerpb.RulesRequest) gathered {
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return r.gather(ctx, req)
	}
	v, _, _ := r.gathers.Do(string(key), func() (any, error) {
		return r.gather(context.WithoutCancel(ctx), req), nil
	})
	return v.(gathered)
}

// gather asks every ACTIVE ruler with a fresh heartbeat for the state of
// the asked tenant's groups it evaluates, narrowed by req's filters (this
// one from memory, the others over gRPC, each within
// -ruler.peer-timeout) and merges the answers. A group two rulers answer
// for (one took it over while the other has not noticed yet) is taken
// from its owner in this ruler's view of the ring, else from the latest
// evaluation. A ruler that fails is named in the warnings; its groups
// stay unknown.
func (r *Ruler) gather(ctx context.Context, req *rulerpb.RulesRequest) gathered {
	type answer struct {
		from   string
		groups []*rulerpb.RuleGroupState
	}
	tenantID := req.GetTenant()
	answers := []answer{{from: r.deps.InstanceID, groups: r.filteredStates(req)}}
	out := gathered{groups: map[string]*rulerpb.RuleGroupState{}, warnings: *annotations.New()}
	var snap *ring.Snapshot
	if r.deps.Ring != nil && r.deps.Peers != nil {
		snap = ring.NewSnapshot(r.deps.Ring.Index(), ring.Config{ReplicationFactor: 1, HeartbeatTimeout: r.deps.HeartbeatTimeout}, time.Now())
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			errs []error
		)
		for _, in := range r.deps.Ring.Instances() {
			if in.ID == r.deps.InstanceID || !snap.Healthy(&in, ring.Write) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				gs, err := r.askPeer(ctx, in, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				answers = append(answers, answer{from: in.ID, groups: gs})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			out.warnings.Add(err)
		}
	}
	from := map[string]string{}
	for _, a := range answers {
		for _, g := range a.groups {
			key := rules.GroupKey(g.Namespace, g.Name)
			if prev, ok := out.groups[key]; ok {
				token := groupToken(tenantID, g.Namespace, g.Name)
				prevOwns := snap != nil && snap.OwnsHealthy(from[key], token, ring.Write)
				owns := snap != nil && snap.OwnsHealthy(a.from, token, ring.Write)
				if prevOwns || !owns && prev.LastEvaluationNs >= g.LastEvaluationNs {
					continue
				}
			}
			out.groups[key], from[key] = g, a.from
		}
	}
	return out
}

// askPeer returns the state of the asked tenant's groups the ruler in
// evaluates, narrowed by req's filters.
func (r *Ruler) askPeer(ctx context.Context, in ring.Instance, req *rulerpb.RulesRequest) ([]*rulerpb.RuleGroupState, error) {
	start := time.Now()
	r.m.peerRequests.Inc()
	gs, err := func() ([]*rulerpb.RuleGroupState, error) {
		c, err := r.deps.Peers.Get(in.Addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
		defer cancel()
		resp, err := c.Rules(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp.GetGroups(), nil
	}()
	r.m.peerDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.peerFailures.WithLabelValues(in.ID).Inc()
		return nil, fmt.Errorf("ruler %s (%s) did not answer for the rule groups it evaluates, listed with health unknown: %w", in.ID, in.Addr, err)
	}
	return gs, nil
}

// groupState is g's state with the rules keep accepts, their active
// alerts if alerts.
func groupState(g *rules.Group, keep func(rules.Rule) bool, alerts bool) *rulerpb.RuleGroupState {
	st := &rulerpb.RuleGroupState{
		Namespace: g.File(), Name: g.Name(), IntervalSeconds: g.Interval().Seconds(), Limit: int64(g.Limit()),
		EvaluationSeconds: g.GetEvaluationTime().Seconds(), LastEvaluationNs: unixNano(g.GetLastEvaluation()),
	}
	for _, rr := range g.Rules() {
		if !keep(rr) {
			continue
		}
		rs := &rulerpb.RuleState{
			Query: rr.Query().String(), Labels: toPBLabels(rr.Labels()), Health: string(rr.Health()),
			EvaluationSeconds: rr.GetEvaluationDuration().Seconds(), LastEvaluationNs: unixNano(rr.GetEvaluationTimestamp()),
		}
		if err := rr.LastError(); err != nil {
			rs.LastError = err.Error()
		}
		switch rule := rr.(type) {
		case *rules.AlertingRule:
			rs.Alert, rs.Annotations, rs.State = rule.Name(), toPBLabels(rule.Annotations()), rule.State().String()
			rs.DurationSeconds, rs.KeepFiringForSeconds = rule.HoldDuration().Seconds(), rule.KeepFiringFor().Seconds()
			var active []*rules.Alert
			if alerts {
				active = rule.ActiveAlerts()
			}
			for _, a := range active {
				rs.Alerts = append(rs.Alerts, &rulerpb.AlertState{
					Labels: toPBLabels(a.Labels), Annotations: toPBLabels(a.Annotations), State: a.State.String(),
					ActiveAtNs: unixNano(a.ActiveAt), KeepFiringSinceNs: unixNano(a.KeepFiringSince), Value: a.Value,
				})
			}
		case *rules.RecordingRule:
			rs.Record = rule.Name()
		default:
			continue
		}
		st.Rules = append(st.Rules, rs)
	}
	return st
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (never).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is the inverse of unixNano.
func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func toPBLabels(ls labels.Labels) []*rulerpb.Label {
	out := make([]*rulerpb.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) { out = append(out, &rulerpb.Label{Name: l.Name, Value: l.Value}) })
	return out
}

func fromPBLabels(ls []*rulerpb.Label) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.GetName(), l.GetValue())
	}
	b.Sort()
	return b.Labels()
}
