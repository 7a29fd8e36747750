package distributor

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/limits"
)

func TestPushRequestRateLimit(t *testing.T) {
	lim := defaultLimits()
	lim.RequestRate, lim.RequestBurstSize, lim.IngestionRateStrategy = 1, 2, limits.StrategyLocal
	h := newRateHarness(t, lim, "overrides:\n  free:\n    request_rate: 0\n", nil)

	for i := range 2 {
		code, body := h.pushAs(t, "a", "up", 1)
		require.Equal(t, http.StatusNoContent, code, "push %d: %s", i, body)
	}
	code, body := h.pushAs(t, "a", "up", 1)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, `request rate limit (1 pushes/s, burst 2) exceeded for tenant "a": send fewer, larger pushes (Prometheus: queue_config max_samples_per_send, batch_send_deadline) or raise the limit (-distributor.request-rate-limit, override "request_rate") [strata-tenant-request-rate-limit]`, body)
	require.Equal(t, 1.0, testutil.ToFloat64(h.d.m.rateLimitedPushes.WithLabelValues("a", limitedRequestRate)))
	require.Equal(t, 2, h.stored(t, "a"))

	// Another tenant has its own bucket; an override of 0 turns it off.
	for i := range 5 {
		code, body = h.pushAs(t, "free", "up", 1)
		require.Equal(t, http.StatusNoContent, code, "push %d: %s", i, body)
	}
	// A second later a has one token again.
	h.now.Add(int64(time.Second))
	code, body = h.pushAs(t, "a", "up", 1)
	require.Equal(t, http.StatusNoContent, code, body)
	code, _ = h.pushAs(t, "a", "up", 1)
	require.Equal(t, http.StatusTooManyRequests, code)
}
