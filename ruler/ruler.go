package ruler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/objstore"
	"golang.org/x/sync/singleflight"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// Deps are what a Ruler is built from.
type Deps struct {
	// Store holds the rule groups (BucketStore, or DirStore with
	// -ruler.rule-path: see NewStore).
	Store RuleStore
	// Queryable is one tenant's view of every series (the querier's).
	Queryable func(tenantID string) storage.Queryable
	// Push writes rule results (the distributor's Push).
	Push PushFunc
	// Limits are the per-tenant limits and ruler overrides.
	Limits *limits.Overrides
	// Ring is the ruler ring; nil evaluates every group here.
	Ring *ring.Ring
	// Alertmanager is the cluster's built-in one, which alerts go to when
	// neither -ruler.alertmanager-url nor the tenant's
	// ruler_alertmanager_url names one; nil: none.
	Alertmanager BuiltinAlertmanager
	// Peers reach the other rulers of Ring, for /api/v1/rules and
	// /api/v1/alerts; nil answers with this ruler's groups only.
	Peers            PeerClients
	InstanceID       string
	HeartbeatTimeout time.Duration
	Tenants          tenant.Resolver
	// TenantLabels caps the tenant label of strata_ruler_*; nil labels
	// every tenant with its id.
	TenantLabels *tenant.LabelCap
	Log          *slog.Logger
	Reg          prometheus.Registerer
	// Engine evaluates the rules; nil makes one with Prometheus' defaults
	// (its metrics unregistered).
	Engine promql.QueryEngine
}

// Ruler evaluates the rule groups this instance owns, per tenant, and
// serves the rule APIs.
type Ruler struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	engine  promql.QueryEngine
	checker *checker
	m       *metrics

	// resync asks Run for a sync with storage now (after an upload).
	resync chan struct{}
	// uploadMu makes an upload's read of the tenant's groups, limit check
	// and write one step on this ruler, so that parallel uploads cannot
	// pass ruler_max_rule_groups_per_tenant together.
	uploadMu sync.Mutex

	mu sync.Mutex
	// all is the last listing of the store: tenant -> namespace -> groups,
	// with each group's fingerprint.
	all     map[string]map[string][]storedGroup
	tenants map[string]*tenantRules // tenants with groups owned here
	stopped bool

	// gathers shares a gather among identical concurrent /api/v1/rules
	// or /api/v1/alerts calls (same tenant and filters).
	gathers singleflight.Group

	// resolver looks up dns+ and dnssrv+ Alertmanager URLs.
	resolver resolver
	// drains are the notifiers of stopped tenants still sending their
	// queues; stopAll waits for them.
	drains sync.WaitGroup
}

// storedGroup is a rule group as read from the store, with a hash of its
// content to tell a change.
type storedGroup struct {
	group rulefmt.RuleGroup
	hash  uint64
}

// New returns a Ruler. It does no I/O.
func New(cfg Config, deps Deps) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Queryable == nil || deps.Push == nil || deps.Limits == nil {
		return nil, errors.New("ruler needs a rule store, a queryable, a push function and limits")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	engine := deps.Engine
	if engine == nil {
		engine = promql.NewEngine(promql.EngineOpts{
			Logger: log, MaxSamples: 50_000_000, Timeout: cfg.EvaluationTimeout,
			LookbackDelta: 5 * time.Minute, EnableAtModifier: true, EnableNegativeOffset: true,
		})
	}
	r := &Ruler{
		cfg: cfg, deps: deps, log: log, engine: engine, checker: newChecker(log),
		resync:   make(chan struct{}, 1),
		all:      map[string]map[string][]storedGroup{},
		tenants:  map[string]*tenantRules{},
		resolver: net.DefaultResolver,
	}
	r.m = newMetrics(deps.Reg, deps.TenantLabels, r.registries)
	return r, nil
}

// NewStore returns the rule store of cfg: the directory -ruler.rule-path
// when set, else the bucket store over bkt.
func NewStore(cfg Config, bkt objstore.Bucket, log *slog.Logger) RuleStore {
	if cfg.RulePath != "" {
		return &DirStore{dir: cfg.RulePath, checker: newChecker(log)}
	}
	return NewBucketStore(bkt)
}

// Run syncs with the store every -ruler.poll-interval and with the ring
// every second until ctx is done, then stops every tenant's rules.
func (r *Ruler) Run(ctx context.Context) error {
	defer r.stopAll()
	r.pollStore(ctx)
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	ringCheck := time.NewTicker(time.Second)
	defer ringCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			r.pollStore(ctx)
		case <-r.resync:
			r.pollStore(ctx)
		case <-ringCheck.C:
			r.apply() // ownership may have changed
		}
	}
}

// pollStore rereads every rule group and applies them.
func (r *Ruler) pollStore(ctx context.Context) {
	all, err := r.deps.Store.All(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.m.syncFailures.Inc()
			r.log.Warn("read rule groups; keeping the last ones", "err", err)
		}
		return
	}
	listing := make(map[string]map[string][]storedGroup, len(all))
	for t, nss := range all {
		listing[t] = map[string][]storedGroup{}
		for ns, gs := range nss {
			for _, g := range gs {
				b, err := yaml.Marshal(&g)
				if err != nil {
					continue
				}
				file, err := yaml.Marshal(&rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
				if err != nil {
					continue
				}
				if _, err := r.checker.parseFile(file); err != nil {
					// Written past the API (or by an older version):
					// evaluating the rest beats evaluating nothing.
					r.log.Warn("skip invalid rule group", "tenant", t, "namespace", ns, "group", g.Name, "err", err)
					continue
				}
				h := fnv.New64a()
				h.Write([]byte(ns))
				h.Write(b)
				listing[t][ns] = append(listing[t][ns], storedGroup{group: g, hash: h.Sum64()})
			}
		}
	}
	r.mu.Lock()
	r.all = listing
	r.mu.Unlock()
	r.m.syncs.Inc()
	r.apply()
}

// groupToken places a rule group on the ruler ring; names hold no control
// characters (checkName), so the NUL separators are unambiguous. NEVER CHANGE IT in a
// running cluster: every group would move (TestGroupToken pins it).
func groupToken(tenantID, namespace, group string) uint32 {
	return ring.StringToken(tenantID + "\x00" + namespace + "\x00" + group)
}

// owner returns the test of whether this ruler evaluates a group now.
func (r *Ruler) owner() func(tenantID, namespace, group string) bool {
	if r.deps.Ring == nil {
		return func(string, string, string) bool { return true }
	}
	snap := ring.NewSnapshot(r.deps.Ring.Index(), ring.Config{ReplicationFactor: 1, HeartbeatTimeout: r.deps.HeartbeatTimeout}, time.Now())
	return func(t, ns, g string) bool {
		return snap.OwnsHealthy(r.deps.InstanceID, groupToken(t, ns, g), ring.Write)
	}
}

// tenantSettings is what a tenant's rule manager and notifier are made
// with; a change makes them anew.
type tenantSettings struct {
	alertmanagers  string
	externalURL    string
	externalLabels limits.LabelSet
	concurrency    int
	timeout        time.Duration
}

func (r *Ruler) settings(tenantID string) tenantSettings {
	l := r.deps.Limits.For(tenantID)
	s := tenantSettings{
		alertmanagers: r.cfg.AlertmanagerURL, externalURL: r.cfg.ExternalURL,
		externalLabels: l.RulerExternalLabels, concurrency: l.RulerEvaluationConcurrency,
		timeout: r.cfg.EvaluationTimeout,
	}
	if l.RulerEvaluationTimeout > 0 {
		s.timeout = l.RulerEvaluationTimeout
	}
	if l.RulerAlertmanagerURL != "" {
		s.alertmanagers = l.RulerAlertmanagerURL
	}
	if s.alertmanagers == "" && r.deps.Alertmanager != nil && r.deps.Alertmanager.Available() {
		// Asked at every sync: a built-in Alertmanager that starts later
		// is used from the next one.
		s.alertmanagers = builtinAlertmanagerURL
	}
	if l.RulerExternalURL != "" {
		s.externalURL = l.RulerExternalURL
	}
	return s
}

// apply makes every tenant's manager evaluate exactly the groups this
// ruler owns now. Only Run's goroutine calls it (and changes tenants and
// r.all), so it works on a copy of the tenants without the lock, which
// the APIs take: stopping or updating a manager waits for its groups'
// evaluations in flight.
func (r *Ruler) apply() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	all, tenants := r.all, maps.Clone(r.tenants)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.tenants = tenants
		r.mu.Unlock()
	}()
	owns := r.owner()
	now := time.Now()
	ids := slices.Collect(maps.Keys(all))
	for t := range tenants {
		if all[t] == nil {
			ids = append(ids, t) // every group of the tenant deleted
		}
	}
	for _, t := range ids {
		nss := all[t]
		owned := map[string][]rulefmt.RuleGroup{}
		foreign := &ruleNames{records: map[string]bool{}, alerts: map[string]bool{}}
		fp := fnv.New64a()
		nsNames := make([]string, 0, len(nss))
		for ns := range nss {
			nsNames = append(nsNames, ns)
		}
		sort.Strings(nsNames)
		for _, ns := range nsNames {
			for _, sg := range nss[ns] {
				if owns(t, ns, sg.group.Name) {
					owned[ns] = append(owned[ns], sg.group)
					fmt.Fprintf(fp, "%d;", sg.hash)
					continue
				}
				for _, rl := range sg.group.Rules {
					foreign.records[rl.Record] = rl.Record != ""
					foreign.alerts[rl.Alert] = rl.Alert != ""
				}
			}
		}
		tr := tenants[t]
		if tr != nil {
			tr.app.foreign.Store(foreign) // before Update removes a moved group
		}
		if len(owned) == 0 {
			if tr != nil && r.idle(tr, now) {
				r.stopTenant(tr)
				delete(tenants, t)
			}
			continue
		}
		if tr != nil {
			tr.idleSince = time.Time{}
		}
		set := r.settings(t)
		if tr != nil && tr.settings != set {
			r.stopTenant(tr)
			delete(tenants, t)
			tr = nil
		}
		if tr == nil {
			var err error
			if tr, err = r.newTenant(t, set); err != nil {
				r.log.Warn("start rule evaluation of tenant", "tenant", t, "err", err)
				continue
			}
			tr.app.foreign.Store(foreign)
			tenants[t] = tr
		}
		if sum := fp.Sum64(); sum != tr.fingerprint {
			if err := tr.update(owned, r.cfg.EvaluationInterval); err != nil {
				r.log.Warn("update rule groups of tenant", "tenant", t, "err", err)
				continue
			}
			tr.fingerprint = sum
		}
	}
}

// idle empties the manager of a tenant none of whose groups this ruler
// owns any more, and reports whether it has been empty long enough to be
// stopped: upstream writes the staleness markers of a group's series two
// of its intervals after it leaves the manager, and not at all once the
// manager stopped. The markers of groups that moved to another ruler are
// dropped (pushAppendable.foreign), those of deleted groups are written,
// as Prometheus does when a group leaves its rule files.
func (r *Ruler) idle(tr *tenantRules, now time.Time) bool {
	if tr.idleSince.IsZero() {
		if err := tr.update(nil, r.cfg.EvaluationInterval); err != nil {
			r.log.Warn("remove the rule groups of tenant", "tenant", tr.id, "err", err)
			return true
		}
		// Upstream's wait for the markers starts when the removed groups'
		// evaluations in flight have ended, which update waited for.
		tr.idleSince = time.Now()
		tr.fingerprint = 0
		return false
	}
	return now.Sub(tr.idleSince) > tr.staleWait
}

// stopTenant stops a tenant's evaluation, and its notifier in the
// background: it sends what it queued for at most
// -ruler.notification-drain-timeout (minutes when an Alertmanager is
// down, which must not hold the ruler's sync loop).
func (r *Ruler) stopTenant(tr *tenantRules) {
	tr.mgr.Stop()
	<-tr.done
	if tr.notifier == nil {
		return
	}
	r.m.draining.Inc()
	r.drains.Add(1)
	go func() {
		defer r.drains.Done()
		defer r.m.draining.Dec()
		if !tr.notifier.stop(r.cfg.NotificationDrainTimeout) {
			r.m.drainTimeouts.Inc()
			r.log.Warn("alert queue of a stopped tenant not sent within -ruler.notification-drain-timeout; dropped the rest", "tenant", tr.id, "timeout", r.cfg.NotificationDrainTimeout)
		}
	}()
}

func (r *Ruler) stopAll() {
	r.mu.Lock()
	r.stopped = true
	trs := r.tenants
	r.tenants = map[string]*tenantRules{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, tr := range trs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stopTenant(tr)
		}()
	}
	wg.Wait()
	r.drains.Wait()
}

// tenantRules is one tenant's rule evaluation on this ruler.
type tenantRules struct {
	id          string
	settings    tenantSettings
	fingerprint uint64
	mgr         *rules.Manager
	loader      *memLoader
	notifier    *tenantNotifier // nil: no Alertmanager
	reg         *prometheus.Registry
	push        PushFunc
	app         *pushAppendable
	touch       func()        // records the tenant active for the tenant label cap
	done        chan struct{} // closed when the manager's Run returned
	externalLbl labels.Labels
	// staleWait is how long an emptied manager keeps running for its
	// removed groups' staleness markers: three of their longest interval
	// and a second, from the end of their last evaluation.
	staleWait time.Duration
	// idleSince is when the tenant's last group here left; zero while it
	// has groups.
	idleSince time.Time
}

// newTenant starts tenant t's rule manager (and notifier) with no groups.
func (r *Ruler) newTenant(t string, set tenantSettings) (*tenantRules, error) {
	reg := prometheus.NewRegistry()
	tr := &tenantRules{
		id: t, settings: set, reg: reg, done: make(chan struct{}), push: r.deps.Push,
		loader:      &memLoader{parser: r.checker.parser, groups: map[string][]rulefmt.RuleGroup{}},
		externalLbl: labels.FromMap(set.externalLabels.Map()),
	}
	var extURL *url.URL
	if set.externalURL != "" {
		u, err := url.Parse(set.externalURL)
		if err != nil {
			return nil, fmt.Errorf("external URL %q: %w", set.externalURL, err)
		}
		extURL = u
	}
	notify := func(context.Context, string, ...*rules.Alert) {}
	if set.alertmanagers != "" {
		n, err := newTenantNotifier(t, set.alertmanagers, r.cfg, notifierDeps{external: tr.externalLbl, reg: reg, log: r.log, resolver: r.resolver, builtin: r.deps.Alertmanager})
		if err != nil {
			return nil, err
		}
		tr.notifier = n
		notify = rules.SendAlerts(n.mgr, set.externalURL)
	}
	tr.app = &pushAppendable{tenantID: t, push: r.deps.Push}
	tr.touch = func() { r.touch(t) }
	queryable := r.deps.Queryable(t)
	query := rules.EngineQueryFunc(r.engine, queryable)
	sem := make(chan struct{}, max(1, set.concurrency))
	timeout := set.timeout
	tr.mgr = rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          extURL,
		QueryFunc: func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, fmt.Errorf("wait for one of the tenant's %d evaluation slots (-%s, override ruler_evaluation_concurrency): %w", cap(sem), limits.FlagRulerConcurrency, ctx.Err())
			}
			defer func() { <-sem }()
			return query(ctx, q, ts)
		},
		NotifyFunc:           notify,
		Context:              context.Background(),
		Appendable:           tr.app,
		Queryable:            queryable,
		Logger:               r.log.With("tenant", t),
		Registerer:           reg,
		OutageTolerance:      r.cfg.ForOutageTolerance,
		ForGracePeriod:       r.cfg.ForGracePeriod,
		ResendDelay:          r.cfg.ResendDelay,
		GroupLoader:          tr.loader,
		RestoreNewRuleGroups: true, // a group moved here resumes its alerts' `for`
		Parser:               r.checker.parser,
	})
	go func() {
		defer close(tr.done)
		tr.mgr.Run()
	}()
	if tr.notifier != nil {
		tr.notifier.start()
	}
	return tr, nil
}

// update makes the manager evaluate exactly groups (namespace -> groups);
// interval is that of a group that sets none.
func (tr *tenantRules) update(groups map[string][]rulefmt.RuleGroup, interval time.Duration) error {
	tr.loader.set(groups)
	files := make([]string, 0, len(groups))
	longest := time.Duration(0)
	for ns, gs := range groups {
		files = append(files, ns)
		for _, g := range gs {
			longest = max(longest, cmp.Or(time.Duration(g.Interval), interval))
		}
	}
	// Groups that leave are marked stale two of their intervals later;
	// a whole third one and a second more let that push end.
	tr.staleWait = max(tr.staleWait, 3*longest+time.Second)
	sort.Strings(files)
	return tr.mgr.Update(interval, files, tr.externalLbl, tr.settings.externalURL, evalGroup(tr.id, tr.push, tr.touch))
}

// evalGroup is the evaluation of one group iteration: upstream's, with
// the group's samples sent as one push when its rules do not read each
// other's results (they would not see them until the push); a group with
// rules that do (or may: a selector without a metric name) pushes after
// each rule, as Prometheus appends.
func evalGroup(tenantID string, push PushFunc, touch func()) rules.GroupEvalIterationFunc {
	return func(ctx context.Context, g *rules.Group, ts time.Time) {
		touch() // the tenant is active: its strata_ruler_* keep its label
		independent := !slices.ContainsFunc(g.Rules(), func(rl rules.Rule) bool { return !rl.NoDependencyRules() })
		if !independent {
			rules.DefaultEvalIterationFunc(ctx, g, ts)
			return
		}
		b := &groupBatch{}
		rules.DefaultEvalIterationFunc(withBatch(ctx, b), g, ts)
		if err := b.flush(ctx, tenantID, push); err != nil {
			err = fmt.Errorf("push rule results: %w", err)
			for _, rl := range g.Rules() {
				rl.SetHealth(rules.HealthBad)
				rl.SetLastError(err)
			}
			g.Logger().Warn("push rule group results", "err", err)
		}
	}
}

// memLoader is the rules.GroupLoader of one tenant: a namespace's groups
// from memory (the store's, filtered to those this ruler owns), parsed
// with the ruler's parser.
type memLoader struct {
	parser parser.Parser
	mu     sync.Mutex
	groups map[string][]rulefmt.RuleGroup
}

func (l *memLoader) set(groups map[string][]rulefmt.RuleGroup) {
	l.mu.Lock()
	l.groups = groups
	l.mu.Unlock()
}

// Load implements rules.GroupLoader; identifier is a namespace.
func (l *memLoader) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &rulefmt.RuleGroups{Groups: l.groups[identifier]}, nil
}

// Parse implements rules.GroupLoader.
func (l *memLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// registries returns each tenant's registry of upstream rule and notifier
// metrics, for strata_ruler_*.
func (r *Ruler) registries() map[string]*prometheus.Registry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*prometheus.Registry, len(r.tenants))
	for t, tr := range r.tenants {
		out[t] = tr.reg
	}
	return out
}
