package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/alertmanagerpb"
	"github.com/strata-metrics/strata/tenant"
)

// bucketPrefix holds one object per tenant: its UserConfig as YAML. '~'
// is not allowed in tenant ids, so no tenant's blocks can be there and the
// components that list tenants (bucket.Tenants) skip it. NEVER CHANGE IT:
// stored configurations would be lost.
const bucketPrefix = "~alertmanager/configs/"

// tenantLimits is all the Alertmanager needs from the overrides.
type tenantLimits interface {
	// For returns tenant's limits; the caller must not modify them.
	// Safe for concurrent use.
	For(tenant string) *limits.Limits
}

// Deps are what the MultitenantAlertmanager uses.
type Deps struct {
	// Bucket stores the tenants' configurations; every replica reads it.
	Bucket  objstore.Bucket
	Limits  tenantLimits
	Tenants tenant.Resolver
	// TenantLabels caps the tenant label of the self-metrics; nil labels
	// every tenant.
	TenantLabels *tenant.LabelCap
	// Ring places tenants on the replicas of the module: each replica runs
	// the tenants whose token it owns among the healthy owners. nil runs
	// every tenant here (a single process, tests).
	Ring ownerRing
	// Peers dials the other replicas (their address in Ring).
	Peers peerDialer
	// InstanceID names this replica in Ring.
	InstanceID string
	// Seedless says this process joins no gossip cluster at start
	// (-memberlist.join is empty): no replica can exist that it does not
	// see yet, so a new tenant's first notification is not held for the
	// settle (others joining it later read its state).
	Seedless bool
	Log      *slog.Logger
	Reg      prometheus.Registerer
}

// MultitenantAlertmanager runs one upstream Alertmanager per tenant that
// has a configuration (or sends alerts, with a fallback configuration).
type MultitenantAlertmanager struct {
	cfg         Config
	deps        Deps
	log         *slog.Logger
	externalURL *url.URL
	fallback    string // upstream YAML; "" for none
	metrics     *metrics

	now func() time.Time
	// fallbackIdle is how long an instance of the fallback configuration
	// stays unused, holding no alert and no silence, before it is removed.
	fallbackIdle time.Duration

	mu        sync.Mutex
	instances map[string]*tenantEntry
	creating  map[string]chan struct{} // tenants whose instance is being made
	listed    map[string]bool          // tenants with a configuration: the last listing and uploads since
	stopped   bool
	synced    bool // the first sync is done

	repl replication
}

type tenantEntry struct {
	*instance
	fromFallback bool         // made for an alert; the bucket has no configuration
	lastUsed     atomic.Int64 // unix ns of the last API request, for fallback instances
}

// New makes the Alertmanager; Run loads the tenants' configurations.
func New(cfg Config, d Deps) (*MultitenantAlertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("-alertmanager.web.external-url: %w", err)
	}
	if d.Ring != nil && (d.Peers == nil || d.InstanceID == "") {
		return nil, errors.New("alertmanager with a ring needs peers and an instance id")
	}
	m := &MultitenantAlertmanager{
		cfg: cfg, deps: d, log: d.Log, externalURL: u, now: time.Now, fallbackIdle: fallbackIdleAfter,
		instances: map[string]*tenantEntry{}, creating: map[string]chan struct{}{}, listed: map[string]bool{},
	}
	m.repl.init()
	if cfg.FallbackConfigFile != "" {
		b, err := os.ReadFile(cfg.FallbackConfigFile)
		if err != nil {
			return nil, fmt.Errorf("read -alertmanager.fallback-config-file: %w", err)
		}
		// The operator's file: no tenant limits, files and addresses allowed.
		if _, err := checkUserConfig(context.Background(), UserConfig{AlertmanagerConfig: string(b)}, checkPolicy{limits: &limits.Limits{AlertmanagerReceiversAllowPrivate: true}, allowFileFields: true}); err != nil {
			return nil, fmt.Errorf("-alertmanager.fallback-config-file %s: %w", filepath.Base(cfg.FallbackConfigFile), err)
		}
		m.fallback = string(b)
	}
	m.metrics = newMetrics(m, d.Reg, d.TenantLabels)
	return m, nil
}

// fallbackIdleAfter is how long a fallback instance stays unused before
// it is removed (fallbackIdle).
const fallbackIdleAfter = time.Hour

// ringCheckInterval is how often the replica compares the tenants it runs
// with those the ring gives it.
const ringCheckInterval = time.Second

// Run loads the configurations of the tenants this replica owns, again
// every -alertmanager.poll-interval, follows the ring every second and
// writes the state of the tenants it persists every
// -alertmanager.persist-interval, until ctx is done; then it writes their
// state to the bucket, stops every tenant's Alertmanager (their silences
// and notification log are written to disk) and returns nil.
func (m *MultitenantAlertmanager) Run(ctx context.Context) error {
	defer func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m.persistAll(pctx)
		cancel()
		m.stopAll()
	}()
	poll := time.NewTicker(m.cfg.PollInterval)
	defer poll.Stop()
	ringCheck := time.NewTicker(ringCheckInterval)
	defer ringCheck.Stop()
	persist := time.NewTicker(m.cfg.PersistInterval)
	defer persist.Stop()
	if err := m.sync(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("loading alertmanager configurations", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			if err := m.sync(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("loading alertmanager configurations", "err", err)
			}
		case <-ringCheck.C:
			m.reconcile(ctx)
		case <-persist.C:
			m.persistAll(ctx)
		}
	}
}

// stopAll stops every tenant's Alertmanager, keeping their local state.
func (m *MultitenantAlertmanager) stopAll() {
	m.mu.Lock()
	all := m.instances
	m.instances = map[string]*tenantEntry{}
	m.mu.Unlock()
	for _, e := range all {
		e.stop()
	}
	m.metrics.loaded.Set(0)
}

// sync lists the tenants' configurations, makes the Alertmanager of
// every tenant this replica owns run its configuration, and stops those
// whose configuration is gone or that this replica no longer owns.
func (m *MultitenantAlertmanager) sync(ctx context.Context) error {
	seen := map[string]bool{}
	err := m.deps.Bucket.Iter(ctx, bucketPrefix, func(name string) error {
		id := strings.TrimPrefix(name, bucketPrefix)
		if tenant.Validate(id) == nil { // else not ours: never a path or a label
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list alertmanager configurations: %w", err)
	}
	var errs error
	for id := range seen {
		if !m.owns(id) {
			continue
		}
		raw, err := m.read(ctx, id)
		if err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		if raw == nil {
			delete(seen, id) // deleted meanwhile
			continue
		}
		if err := m.load(ctx, id, raw); err != nil {
			m.metrics.loadFailures.Inc()
			m.log.Warn("loading a tenant's alertmanager configuration", "tenant", id, "err", err)
		}
	}
	m.mu.Lock()
	var missing []string
	for id, e := range m.instances {
		if !seen[id] && !e.fromFallback {
			missing = append(missing, id)
		}
	}
	m.mu.Unlock()
	// An upload during the listing is not in it: only a configuration
	// that is still missing now is gone.
	for _, id := range missing {
		ok, err := m.deps.Bucket.Exists(ctx, bucketPrefix+id)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("check alertmanager configuration of tenant %q: %w", id, err))
			seen[id] = true
			continue
		}
		if ok {
			seen[id] = true
			continue
		}
		m.remove(id)
	}
	m.mu.Lock()
	m.listed = seen
	m.synced = true
	m.mu.Unlock()
	m.reconcile(ctx)
	return errs
}

// read returns tenant's stored configuration; nil when there is none.
func (m *MultitenantAlertmanager) read(ctx context.Context, id string) ([]byte, error) {
	r, err := m.deps.Bucket.Get(ctx, bucketPrefix+id)
	if err != nil {
		if m.deps.Bucket.IsObjNotFoundErr(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read alertmanager configuration of tenant %q: %w", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read alertmanager configuration of tenant %q: %w", id, err)
	}
	return b, nil
}

// load checks a stored configuration again (the limits or the firewall
// may have changed since the upload) and runs it; one that runs already
// is left alone.
func (m *MultitenantAlertmanager) load(ctx context.Context, id string, raw []byte) error {
	m.mu.Lock()
	e := m.instances[id]
	m.mu.Unlock()
	if e != nil && e.running(string(raw)) {
		return nil // checked when it was loaded; the dial checks the firewall again
	}
	uc, err := decodeUserConfig(raw)
	if err != nil {
		return err
	}
	p, err := checkUserConfig(ctx, uc, m.policy(id))
	if err != nil {
		return err
	}
	return m.run(ctx, id, string(raw), p, false)
}

func (m *MultitenantAlertmanager) policy(id string) checkPolicy {
	return checkPolicy{limits: m.deps.Limits.For(id), allowFileFields: m.cfg.AllowFileFields, resolve: lookupIP}
}

func lookupIP(ctx context.Context, host string) ([]net.IP, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupIP(ctx, "ip", host)
}

// run applies p to tenant id's Alertmanager, making it first if needed.
func (m *MultitenantAlertmanager) run(ctx context.Context, id, raw string, p *parsed, fromFallback bool) error {
	e, created, err := m.entry(ctx, id, fromFallback)
	if err != nil {
		return err
	}
	if err := e.apply(raw, p); err != nil {
		if created {
			m.remove(id)
		}
		return err
	}
	m.mu.Lock()
	e.fromFallback = fromFallback
	m.mu.Unlock()
	return nil
}

// entry returns tenant id's Alertmanager, made (without configuration)
// when it has none, its state read from another owner or the bucket.
func (m *MultitenantAlertmanager) entry(ctx context.Context, id string, fromFallback bool) (*tenantEntry, bool, error) {
	if err := tenant.Validate(id); err != nil {
		return nil, false, err // never a path from an unchecked id
	}
	for range 100 { // bounded: each round waits for another maker to finish
		m.mu.Lock()
		if m.stopped {
			m.mu.Unlock()
			return nil, false, errors.New("alertmanager is shutting down")
		}
		if e := m.instances[id]; e != nil {
			m.mu.Unlock()
			return e, false, nil
		}
		wait, busy := m.creating[id]
		if !busy {
			m.creating[id] = make(chan struct{})
		}
		m.mu.Unlock()
		if !busy {
			return m.create(ctx, id, fromFallback)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return nil, false, fmt.Errorf("make the alertmanager of tenant %q: made and removed too often meanwhile", id)
}

// create makes tenant id's Alertmanager; the caller holds creating[id].
func (m *MultitenantAlertmanager) create(ctx context.Context, id string, fromFallback bool) (*tenantEntry, bool, error) {
	defer func() {
		m.mu.Lock()
		close(m.creating[id])
		delete(m.creating, id)
		m.mu.Unlock()
	}()
	in, err := newInstance(instanceDeps{
		tenant: id, dir: filepath.Join(m.cfg.DataDir, id), externalURL: m.externalURL, retention: m.cfg.Retention,
		allowPrivate:    func() bool { return m.deps.Limits.For(id).AlertmanagerReceiversAllowPrivate || m.runsFallback(id) },
		maxAlerts:       func() int { return m.deps.Limits.For(id).AlertmanagerMaxAlertsCount },
		maxSilences:     func() int { return m.deps.Limits.For(id).AlertmanagerMaxSilencesCount },
		maxSilenceBytes: func() int { return m.deps.Limits.For(id).AlertmanagerMaxSilenceSizeBytes },
		maxGroups:       func() int { return m.deps.Limits.For(id).AlertmanagerMaxAggregationGroups },
		received:        func(n int) { m.metrics.received(id, n) },
		rates:           m.newRateLimits(id),
		broadcast:       func(kind alertmanagerpb.StateKind, b []byte) { m.broadcast(id, kind, b) },
		wait:            func() time.Duration { return time.Duration(m.position(id)) * m.cfg.PeerTimeout },
		settle:          func(in *instance) { m.settle(id, in) },
		settleAfter:     m.settleAfter(),
		log:             m.log.With("tenant", id),
	})
	if err != nil {
		return nil, false, err
	}
	m.syncState(ctx, id, in)
	e := &tenantEntry{instance: in, fromFallback: fromFallback}
	e.lastUsed.Store(m.now().UnixNano())
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		in.stop()
		return nil, false, errors.New("alertmanager is shutting down")
	}
	m.instances[id] = e
	m.metrics.loaded.Set(float64(len(m.instances)))
	m.mu.Unlock()
	return e, true, nil
}

// runsFallback reports whether tenant id runs the operator's fallback
// configuration, whose receivers the firewall does not restrict.
func (m *MultitenantAlertmanager) runsFallback(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.instances[id]
	return e != nil && e.fromFallback
}

// remove stops tenant id's Alertmanager and deletes its local state.
func (m *MultitenantAlertmanager) remove(id string) {
	m.mu.Lock()
	e := m.instances[id]
	delete(m.instances, id)
	m.metrics.loaded.Set(float64(len(m.instances)))
	m.mu.Unlock()
	if e != nil {
		m.teardown(e.instance)
	}
}

// disown hands tenant id over to its owners: its state goes to the
// bucket, for a new owner that finds no other running it, then its
// Alertmanager stops here and its local state is removed.
//
// It writes the state before it stops answering ReadState for the
// tenant, so that a new owner always finds it in one of the two places.
func (m *MultitenantAlertmanager) disown(ctx context.Context, id string) {
	m.mu.Lock()
	e := m.instances[id]
	m.mu.Unlock()
	if e == nil {
		return
	}
	m.persist(ctx, id, e.instance)
	m.mu.Lock()
	if m.instances[id] == e {
		delete(m.instances, id)
	}
	m.metrics.loaded.Set(float64(len(m.instances)))
	m.mu.Unlock()
	m.teardown(e.instance)
}

func (m *MultitenantAlertmanager) teardown(in *instance) {
	in.stop()
	if err := os.RemoveAll(filepath.Join(m.cfg.DataDir, in.tenant)); err != nil {
		m.log.Warn("removing a deleted tenant's alertmanager state", "tenant", in.tenant, "err", err)
	}
}

// lookup returns the Alertmanager of tenant id: one that has a
// configuration in the bucket and none running here yet gets it now;
// with a fallback configuration, one is made for a tenant without. nil
// when none.
func (m *MultitenantAlertmanager) lookup(ctx context.Context, id string) (*instance, error) {
	m.mu.Lock()
	e, synced := m.instances[id], m.synced
	m.mu.Unlock()
	if !synced {
		return nil, errNotSynced
	}
	if e != nil {
		if e.running("") {
			return nil, errNotSynced // made, its first configuration not applied yet
		}
		e.lastUsed.Store(m.now().UnixNano())
		return e.instance, nil
	}
	// A configuration may have been uploaded through another replica
	// since the last poll: it wins over the fallback.
	raw, err := m.read(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case raw != nil:
		if err := m.load(ctx, id, raw); err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.listed[id] = true
		m.mu.Unlock()
	case m.fallback != "":
		p, err := checkUserConfig(ctx, UserConfig{AlertmanagerConfig: m.fallback}, checkPolicy{limits: &limits.Limits{AlertmanagerReceiversAllowPrivate: true}, allowFileFields: true})
		if err != nil {
			return nil, err
		}
		if err := m.run(ctx, id, m.fallback, p, true); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.instances[id]; e != nil && !e.running("") {
		return e.instance, nil
	}
	return nil, nil
}

var errNotSynced = errors.New("the alertmanager has not loaded the tenants' configurations yet")

// CheckReady fails until the first configurations are loaded.
func (m *MultitenantAlertmanager) CheckReady(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return errNotSynced
	}
	return nil
}

// upload stores tenant id's configuration and runs it here at once when
// this replica owns the tenant; the other owners run it at their next
// poll, or at the tenant's next request.
func (m *MultitenantAlertmanager) upload(ctx context.Context, id string, body []byte) error {
	uc, err := decodeUserConfig(body)
	if err != nil {
		return err
	}
	p, err := checkUserConfig(ctx, uc, m.policy(id))
	if err != nil {
		return err
	}
	raw, err := encodeUserConfig(uc)
	if err != nil {
		return fmt.Errorf("encode alertmanager configuration: %w", err)
	}
	if err := m.deps.Bucket.Upload(ctx, bucketPrefix+id, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("store alertmanager configuration of tenant %q: %w", id, err)
	}
	m.mu.Lock()
	m.listed[id] = true
	m.mu.Unlock()
	if !m.owns(id) {
		return nil
	}
	return m.run(ctx, id, string(raw), p, false)
}

// deleteConfig removes tenant id's configuration and its persisted
// state and stops its Alertmanager here; the other replicas stop theirs
// at their next poll.
func (m *MultitenantAlertmanager) deleteConfig(ctx context.Context, id string) error {
	if err := m.deps.Bucket.Delete(ctx, bucketPrefix+id); err != nil && !m.deps.Bucket.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete alertmanager configuration of tenant %q: %w", id, err)
	}
	m.mu.Lock()
	delete(m.listed, id)
	m.mu.Unlock()
	m.remove(id)
	if err := m.deps.Bucket.Delete(ctx, statePrefix+id); err != nil && !m.deps.Bucket.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete alertmanager state of tenant %q: %w", id, err)
	}
	return nil
}

// tenantIDs lists the tenants whose Alertmanager runs here.
func (m *MultitenantAlertmanager) tenantIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.instances))
	for id := range m.instances {
		ids = append(ids, id)
	}
	return ids
}

func (m *MultitenantAlertmanager) registry(id string) *prometheus.Registry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.instances[id]; e != nil {
		return e.reg
	}
	return nil
}
