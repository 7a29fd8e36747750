package alertmanager

import (
	"context"
	"slices"

	"github.com/strata-metrics/strata/ring"
)

// RingKey is the gossip key of the alertmanager ring.
const RingKey = "alertmanager"

// RingNumTokens is how many tokens a replica takes in the alertmanager
// ring: enough that tenants spread evenly over a few replicas.
const RingNumTokens = 128

// ownerRing is the ring that places tenants on replicas.
type ownerRing interface {
	// Snapshot returns the lookups over the current state.
	Snapshot() *ring.Snapshot
	// Instances returns every instance in the ring.
	Instances() []ring.Instance
}

// tenantToken places a tenant on the alertmanager ring. NEVER CHANGE IT in
// a running cluster: every tenant would move (TestTenantToken pins it).
func tenantToken(id string) uint32 { return ring.StringToken(id) }

// owners returns the healthy replicas that run tenant id, the first
// first; sharded is false without a ring (this replica runs every tenant).
func (m *MultitenantAlertmanager) owners(id string) (owners []ring.Instance, sharded bool) {
	if m.deps.Ring == nil {
		return nil, false
	}
	return m.deps.Ring.Snapshot().HealthyOwners(tenantToken(id), ring.Write, nil), true
}

// owns reports whether this replica runs tenant id.
func (m *MultitenantAlertmanager) owns(id string) bool {
	if m.deps.Ring == nil {
		return true
	}
	return m.deps.Ring.Snapshot().OwnsHealthy(m.deps.InstanceID, tenantToken(id), ring.Write)
}

// position is this replica's place among tenant id's owners: upstream's
// peer position, which multiplies the wait before a notification. One
// that is not an owner comes after them all.
func (m *MultitenantAlertmanager) position(id string) int {
	owners, sharded := m.owners(id)
	if !sharded {
		return 0
	}
	if i := slices.IndexFunc(owners, func(in ring.Instance) bool { return in.ID == m.deps.InstanceID }); i >= 0 {
		return i
	}
	return len(owners)
}

// persists reports whether this replica writes tenant id's state to the
// bucket: the first of its owners (or the only replica, without a ring).
func (m *MultitenantAlertmanager) persists(id string) bool {
	return m.position(id) == 0
}

// reconcile makes this replica run exactly the tenants it owns: it starts
// those with a configuration that it does not run yet, hands over those
// it no longer owns, reads the state of owners it had not seen, and
// removes fallback instances that have been idle for fallbackIdle.
func (m *MultitenantAlertmanager) reconcile(ctx context.Context) {
	m.mu.Lock()
	if m.stopped || !m.synced {
		m.mu.Unlock()
		return
	}
	var start, drop, idle []string
	for id, ok := range m.listed {
		if ok && m.instances[id] == nil && m.owns(id) {
			start = append(start, id)
		}
	}
	cutoff := m.now().Add(-m.fallbackIdle).UnixNano()
	var fallbacks []*tenantEntry
	for id, e := range m.instances {
		switch {
		case !m.owns(id):
			drop = append(drop, id)
		case e.fromFallback && e.lastUsed.Load() <= cutoff:
			fallbacks = append(fallbacks, e)
		}
	}
	m.mu.Unlock()
	for _, e := range fallbacks {
		if e.idle(ctx) {
			idle = append(idle, e.tenant)
		}
	}
	for _, id := range drop {
		m.log.Info("the ring moved a tenant's alertmanager away", "tenant", id)
		m.disown(ctx, id)
	}
	for _, id := range idle {
		m.log.Info("removing an idle alertmanager of the fallback configuration", "tenant", id)
		m.remove(id)
	}
	m.pullFromNewOwners(ctx)
	for _, id := range start {
		raw, err := m.read(ctx, id)
		if err != nil {
			m.log.Warn("loading a tenant's alertmanager configuration", "tenant", id, "err", err)
			continue
		}
		if raw == nil {
			continue // deleted meanwhile; the next sync forgets it
		}
		if err := m.load(ctx, id, raw); err != nil {
			m.metrics.loadFailures.Inc()
			m.log.Warn("loading a tenant's alertmanager configuration", "tenant", id, "err", err)
			m.mu.Lock()
			if _, ok := m.listed[id]; ok {
				m.listed[id] = false // not again before the next sync
			}
			m.mu.Unlock()
		}
	}
}
