package alertmanager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// senderRing is what a Sender reads of the alertmanager ring.
type senderRing interface {
	Snapshot() *ring.Snapshot
	CountHealthy(op ring.Operation) int
}

// Sender posts a tenant's alerts to the cluster's built-in Alertmanager:
// to this process' module when it runs one, else over gRPC to every
// healthy owner of the tenant in the alertmanager ring, as a POST to any
// replica would. The ruler sends through it when no Alertmanager URL is
// configured. Goroutine-safe.
type Sender struct {
	ring  senderRing
	peers peerDialer
	local func() *MultitenantAlertmanager
}

// NewSender returns a Sender over the alertmanager ring r, dialling
// replicas with peers. local returns this process' module, or nil when it
// runs none (it is asked at each post: modules are made in any order).
func NewSender(r senderRing, peers peerDialer, local func() *MultitenantAlertmanager) *Sender {
	return &Sender{ring: r, peers: peers, local: local}
}

// Available reports whether the cluster runs a built-in Alertmanager:
// this process does, or the ring has a healthy replica.
func (s *Sender) Available() bool {
	if s.local != nil && s.local() != nil {
		return true
	}
	return s.ring != nil && s.ring.CountHealthy(ring.Write) > 0
}

// PostAlerts posts tenantID's alerts, the JSON body of upstream's POST
// /api/v2/alerts (what Prometheus' notifier sends): successful when one
// owner of the tenant took them.
func (s *Sender) PostAlerts(ctx context.Context, tenantID string, body []byte) error {
	if s.local != nil {
		if m := s.local(); m != nil {
			return m.PostAlerts(ctx, tenantID, body)
		}
	}
	if err := tenant.Validate(tenantID); err != nil {
		return err
	}
	owners := s.ring.Snapshot().HealthyOwners(tenantToken(tenantID), ring.Write, nil)
	if len(owners) == 0 {
		return fmt.Errorf("%w: no healthy alertmanager replica owns tenant %q", errNoOwner, tenantID)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, alertsPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post alerts of tenant %q: %w", tenantID, err)
	}
	r.Header.Set("Content-Type", "application/json")
	errs := make([]error, len(owners))
	codes := make([]int, len(owners))
	var wg sync.WaitGroup
	for i, o := range owners {
		wg.Go(func() {
			res := forwardTo(ctx, s.peers, o, r, tenantID, body)
			codes[i] = res.code
			if res.code >= 300 {
				errs[i] = fmt.Errorf("%s: %d %s", o.ID, res.code, strings.TrimSpace(res.body.String()))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil // one owner took them: it notifies, the others learn from its log
		}
	}
	if !slices.ContainsFunc(codes, func(c int) bool { return c != http.StatusNotFound }) {
		return &NotConfiguredError{Tenant: tenantID}
	}
	return fmt.Errorf("post alerts of tenant %q to its alertmanager replicas: %w", tenantID, errors.Join(errs...))
}
