package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"golang.org/x/time/rate"

	"github.com/strata-metrics/strata/limits"
)

// ErrNotificationRateLimited is a notification refused by the tenant's
// alertmanager_notification_rate_limit(_per_integration).
var ErrNotificationRateLimited = errors.New("notification rate limit reached")

// notificationRate is a tenant's limit on one integration: its rate
// (notifications/s, 0 for none) and the flag and override that set it.
type notificationRate struct {
	rate           float64
	flag, override string
}

// notificationRateOf returns l's notification rate limit of integration.
func notificationRateOf(l *limits.Limits, integration string) notificationRate {
	if r, ok := l.AlertmanagerNotificationRateLimitPerIntegration.Get(integration); ok {
		return notificationRate{rate: r, flag: limits.FlagAlertmanagerNotificationRates, override: "alertmanager_notification_rate_limit_per_integration"}
	}
	return notificationRate{rate: l.AlertmanagerNotificationRateLimit, flag: limits.FlagAlertmanagerNotificationRate, override: "alertmanager_notification_rate_limit"}
}

// rateLimits are a tenant's token buckets, one per integration (webhook,
// email, ...) shared by all its receivers; they outlive configuration
// reloads, and follow the tenant's limit as the overrides change.
type rateLimits struct {
	limit   func(integration string) notificationRate
	limited func(integration string) // counts a refusal

	mu       sync.Mutex
	limiters map[string]*integrationLimiter
}

type integrationLimiter struct {
	rate    float64 // the rate lim was made for
	limiter *rate.Limiter
}

// newRateLimits returns tenant id's rate limits, which read its limits at
// each notification and count refusals in the self-metrics.
func (m *MultitenantAlertmanager) newRateLimits(id string) *rateLimits {
	return &rateLimits{
		limit: func(integration string) notificationRate {
			return notificationRateOf(m.deps.Limits.For(id), integration)
		},
		limited:  func(integration string) { m.metrics.rateLimited(id, integration) },
		limiters: map[string]*integrationLimiter{},
	}
}

// allow takes a token of integration's bucket, or returns why not.
func (r *rateLimits) allow(integration string) error {
	l := r.limit(integration)
	if l.rate <= 0 {
		return nil
	}
	r.mu.Lock()
	il := r.limiters[integration]
	if il == nil {
		il = &integrationLimiter{}
		r.limiters[integration] = il
	}
	if il.limiter == nil || il.rate != l.rate {
		burst := int(min(math.Ceil(l.rate), math.MaxInt32))
		if il.limiter == nil {
			il.limiter = rate.NewLimiter(rate.Limit(l.rate), burst)
		} else {
			il.limiter.SetLimit(rate.Limit(l.rate))
			il.limiter.SetBurst(burst)
		}
		il.rate = l.rate
	}
	ok := il.limiter.Allow()
	r.mu.Unlock()
	if ok {
		return nil
	}
	r.limited(integration)
	return fmt.Errorf("%w: integration %s may send %g notifications/s (-%s, override %s)", ErrNotificationRateLimited, integration, l.rate, l.flag, l.override)
}

// wrap returns receiver's integrations with the tenant's rate limit in
// front of each: a notification over it fails for that integration
// without retries in this flush; the dispatcher tries again at the
// group's next flush, as after any failure.
func (r *rateLimits) wrap(receiver string, ints []notify.Integration) []notify.Integration {
	out := make([]notify.Integration, len(ints))
	for i, in := range ints {
		n := &rateLimitedNotifier{next: in, limits: r}
		out[i] = notify.NewIntegration(n, n, in.Name(), in.Index(), receiver)
	}
	return out
}

// rateLimitedNotifier is an integration behind its tenant's rate limit.
type rateLimitedNotifier struct {
	next   notify.Integration
	limits *rateLimits
}

func (n *rateLimitedNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	if err := n.limits.allow(n.next.Name()); err != nil {
		return notify.Unrecoverable(err, notify.RateLimitedReason)
	}
	return n.next.Notify(ctx, alerts...)
}

func (n *rateLimitedNotifier) SendResolved() bool { return n.next.SendResolved() }
