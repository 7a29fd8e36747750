package distributor

import (
	"fmt"
	"net/http"
	"time"

	"github.com/strata-metrics/strata/limits"
)

const (
	// idTenantRequestRate ends the message of the request rate limit.
	idTenantRequestRate = "strata-tenant-request-rate-limit"
	// limitedRequestRate labels strata_distributor_rate_limited_pushes_total
	// for pushes refused by the request rate limit.
	limitedRequestRate = "request_rate"
)

// allowRequest is the per-tenant request rate limit (Mimir's request_rate
// and request_burst_size): a token bucket per tenant, of its own, one
// token per push whatever its size, taken before the body is read. It
// bounds what the ingestion rate limit cannot: a flood of tiny pushes,
// each well within the samples a tenant may send, whose cost is per
// request (HTTP, the body's read, the push to the ingesters). Off while
// the rate is 0, the default. The rate follows the ingestion rate
// strategy: divided by the healthy distributors under "global".
func (r *rateLimiter) allowRequest(tenantID string, lim *limits.Limits, now time.Time) error {
	if lim.RequestRate <= 0 {
		return nil
	}
	rate, shares := lim.RequestRate, 1
	if lim.IngestionRateStrategy == limits.StrategyGlobal {
		shares = max(1, r.healthy())
		rate /= float64(shares)
	}
	b := r.lock(tenantID, rate, float64(lim.RequestBurstSize), now)
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	}
	b.mu.Unlock()
	if ok {
		return nil
	}
	global := ""
	if shares > 1 {
		global = fmt.Sprintf(", shared by %d healthy distributors: %g pushes/s each", shares, rate)
	}
	return &LimitedError{Msg: fmt.Sprintf("request rate limit (%g pushes/s, burst %d%s) exceeded for tenant %q: send fewer, larger pushes (Prometheus: queue_config max_samples_per_send, batch_send_deadline) or raise the limit (-%s, override %q) [%s]",
		lim.RequestRate, lim.RequestBurstSize, global, tenantID, limits.FlagRequestRate, "request_rate", idTenantRequestRate)}
}

// checkRequestRate applies the tenant's request rate limit before r's body
// is read; a refused body is drained, not decoded (see refuseEarly).
func (d *Distributor) checkRequestRate(r *http.Request, tenantID string) error {
	err := d.reqRate.allowRequest(tenantID, d.limits.For(tenantID), d.now())
	if err == nil {
		return nil
	}
	d.m.rateLimitedPushes.WithLabelValues(d.tenantLabels.Value(tenantID), limitedRequestRate).Inc()
	d.drain(r)
	return err
}
