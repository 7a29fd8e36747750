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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
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
	// InstanceID names this replica among those running the module;
	// "" skips the election (a single process, tests).
	InstanceID string
	Log        *slog.Logger
	Reg        prometheus.Registerer
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

	started time.Time // this replica's start, for the election

	mu        sync.Mutex
	instances map[string]*tenantEntry
	stopped   bool
	synced    bool   // the first sync is done
	standby   string // the replica that serves instead of this one; "" when this one serves
}

type tenantEntry struct {
	*instance
	fromFallback bool // made for an alert; the bucket has no configuration
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
	if d.InstanceID != "" {
		if err := tenant.Validate(d.InstanceID); err != nil {
			return nil, fmt.Errorf("alertmanager heartbeat name: -instance.id: %w", err)
		}
	}
	m := &MultitenantAlertmanager{cfg: cfg, deps: d, log: d.Log, externalURL: u, instances: map[string]*tenantEntry{}, started: time.Now()}
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

// Run loads every tenant's configuration, again every
// -alertmanager.poll-interval, until ctx is done; then it stops every
// tenant's Alertmanager (their silences and notification log are written
// to disk) and returns nil.
func (m *MultitenantAlertmanager) Run(ctx context.Context) error {
	defer m.resign()
	defer func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		m.stopAll()
	}()
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := m.sync(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("loading alertmanager configurations", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
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

// sync makes every tenant's Alertmanager run the configuration in the
// bucket and stops those whose configuration is gone.
func (m *MultitenantAlertmanager) sync(ctx context.Context) error {
	other, err := m.elect(ctx)
	if err != nil {
		return err // as before: a bucket that cannot be written cannot be read either
	}
	m.mu.Lock()
	was := m.standby
	m.standby = other
	m.synced = true
	m.mu.Unlock()
	if other != "" {
		if was != other {
			m.log.Warn("another replica runs the tenants' alertmanagers: this one stands by (run the alertmanager module in one process)", "serving", other)
		}
		m.stopAll()
		return nil
	}
	if was != "" {
		m.log.Info("this replica now runs the tenants' alertmanagers", "was", was)
	}
	seen := map[string]bool{}
	var errs error
	err = m.deps.Bucket.Iter(ctx, bucketPrefix, func(name string) error {
		id := strings.TrimPrefix(name, bucketPrefix)
		if err := tenant.Validate(id); err != nil {
			return nil // not ours: never a path or a label
		}
		seen[id] = true
		raw, err := m.read(ctx, id)
		if err != nil {
			errs = errors.Join(errs, err)
			return nil
		}
		if err := m.load(ctx, id, raw); err != nil {
			m.metrics.loadFailures.Inc()
			m.log.Warn("loading a tenant's alertmanager configuration", "tenant", id, "err", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list alertmanager configurations: %w", err)
	}
	m.mu.Lock()
	var gone []*tenantEntry
	for id, e := range m.instances {
		if !seen[id] && !e.fromFallback {
			gone = append(gone, e)
			delete(m.instances, id)
		}
	}
	m.metrics.loaded.Set(float64(len(m.instances)))
	m.mu.Unlock()
	for _, e := range gone {
		m.teardown(e.instance)
	}
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
	return m.run(id, string(raw), p, false)
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
func (m *MultitenantAlertmanager) run(id, raw string, p *parsed, fromFallback bool) error {
	e, created, err := m.entry(id, fromFallback)
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
// when it has none.
func (m *MultitenantAlertmanager) entry(id string, fromFallback bool) (*tenantEntry, bool, error) {
	if err := tenant.Validate(id); err != nil {
		return nil, false, err // never a path from an unchecked id
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, false, errors.New("alertmanager is shutting down")
	}
	if m.standby != "" {
		return nil, false, &StandbyError{Serving: m.standby}
	}
	if e := m.instances[id]; e != nil {
		return e, false, nil
	}
	in, err := newInstance(instanceDeps{
		tenant: id, dir: filepath.Join(m.cfg.DataDir, id), externalURL: m.externalURL, retention: m.cfg.Retention,
		allowPrivate:    func() bool { return m.deps.Limits.For(id).AlertmanagerReceiversAllowPrivate || m.runsFallback(id) },
		maxAlerts:       func() int { return m.deps.Limits.For(id).AlertmanagerMaxAlertsCount },
		maxSilences:     func() int { return m.deps.Limits.For(id).AlertmanagerMaxSilencesCount },
		maxSilenceBytes: func() int { return m.deps.Limits.For(id).AlertmanagerMaxSilenceSizeBytes },
		maxGroups:       func() int { return m.deps.Limits.For(id).AlertmanagerMaxAggregationGroups },
		received:        func(n int) { m.metrics.received(id, n) },
		rates:           m.newRateLimits(id),
		log:             m.log.With("tenant", id),
	})
	if err != nil {
		return nil, false, err
	}
	e := &tenantEntry{instance: in, fromFallback: fromFallback}
	m.instances[id] = e
	m.metrics.loaded.Set(float64(len(m.instances)))
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

func (m *MultitenantAlertmanager) teardown(in *instance) {
	in.stop()
	if err := os.RemoveAll(filepath.Join(m.cfg.DataDir, in.tenant)); err != nil {
		m.log.Warn("removing a deleted tenant's alertmanager state", "tenant", in.tenant, "err", err)
	}
}

// lookup returns the Alertmanager of tenant id: with a fallback
// configuration, one is made for a tenant without. nil when none.
func (m *MultitenantAlertmanager) lookup(ctx context.Context, id string) (*instance, error) {
	m.mu.Lock()
	e, standby, synced := m.instances[id], m.standby, m.synced
	m.mu.Unlock()
	if standby != "" {
		return nil, &StandbyError{Serving: standby}
	}
	if !synced {
		return nil, errNotSynced
	}
	if e != nil {
		if e.running("") {
			return nil, errNotSynced // made, its first configuration not applied yet
		}
		return e.instance, nil
	}
	if m.fallback == "" {
		return nil, nil
	}
	// A configuration may have been uploaded through another replica
	// since the last poll: it wins over the fallback.
	raw, err := m.read(ctx, id)
	if err != nil {
		return nil, err
	}
	if raw != nil {
		if err := m.load(ctx, id, raw); err != nil {
			return nil, err
		}
	} else {
		p, err := checkUserConfig(ctx, UserConfig{AlertmanagerConfig: m.fallback}, checkPolicy{limits: &limits.Limits{AlertmanagerReceiversAllowPrivate: true}, allowFileFields: true})
		if err != nil {
			return nil, err
		}
		if err := m.run(id, m.fallback, p, true); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.instances[id]; e != nil && !e.running("") {
		return e.instance, nil
	}
	return nil, nil
}

// StandbyError is a request to a replica that stands by: 503.
type StandbyError struct{ Serving string }

func (e *StandbyError) Error() string {
	return fmt.Sprintf("this replica stands by: replica %q runs the tenants' alertmanagers (tenants are not sharded across replicas; run the alertmanager module in one process)", e.Serving)
}

var errNotSynced = errors.New("the alertmanager has not loaded the tenants' configurations yet")

// CheckReady fails until the first configurations are loaded (or this
// replica stands by).
func (m *MultitenantAlertmanager) CheckReady(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return errNotSynced
	}
	return nil
}

// upload stores tenant id's configuration and runs it here at once; the
// other replicas run it at their next poll.
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
	standby := m.standby != ""
	m.mu.Unlock()
	if standby {
		return nil // the serving replica runs it at its next poll
	}
	return m.run(id, string(raw), p, false)
}

// deleteConfig removes tenant id's configuration and stops its
// Alertmanager here; the other replicas stop theirs at their next poll.
func (m *MultitenantAlertmanager) deleteConfig(ctx context.Context, id string) error {
	if err := m.deps.Bucket.Delete(ctx, bucketPrefix+id); err != nil && !m.deps.Bucket.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete alertmanager configuration of tenant %q: %w", id, err)
	}
	m.remove(id)
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
