package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "-querier.timeout must be positive, got 0s"},
		{"zero max samples", func(c *Config) { c.MaxSamples = 0 }, "-querier.max-samples must be positive, got 0"},
		{"zero lookback", func(c *Config) { c.LookbackDelta = 0 }, "-querier.lookback-delta must be positive, got 0s"},
		{"zero concurrency", func(c *Config) { c.MaxConcurrent = 0 }, "-querier.max-concurrent must be positive, got 0"},
		{"tiny evaluation interval", func(c *Config) { c.DefaultEvaluationInterval = time.Microsecond }, "-querier.default-evaluation-interval must be at least 1ms, got 1µs"},
		{"negative max query length", func(c *Config) { c.MaxQueryLength = -time.Hour }, "-querier.max-query-length must not be negative, got -1h0m0s"},
		{"negative straggler grace", func(c *Config) { c.IngesterStragglerGrace = -time.Second }, "-querier.ingester-straggler-grace must not be negative, got -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestErrorClassification(t *testing.T) {
	badInput, err := status.New(codes.InvalidArgument, "bad").WithDetails(&ingesterpb.ErrorDetails{Class: ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT})
	require.NoError(t, err)
	unavailable := &UnavailableError{RPC: "QueryStream", Asked: 3, MaxErrors: 1, Failures: []InstanceFailure{
		{ID: "a", Err: status.Error(codes.Unavailable, "down")}, {ID: "b", Err: badInput.Err()},
	}}
	rejected := &UnavailableError{RPC: "QueryStream", Asked: 3, MaxErrors: 1, Failures: []InstanceFailure{
		{ID: "a", Err: badInput.Err()}, {ID: "b", Err: badInput.Err()},
	}}
	for _, tc := range []struct {
		name     string
		err      error
		wantType promapi.ErrorType
		wantCode int
	}{
		{"engine canceled", promql.ErrQueryCanceled("x"), promapi.ErrorCanceled, 499},
		{"engine timeout", promql.ErrQueryTimeout("x"), promapi.ErrorTimeout, http.StatusServiceUnavailable},
		{"engine storage", promql.ErrStorage{Err: errors.New("x")}, promapi.ErrorInternal, http.StatusInternalServerError},
		{"context canceled", fmt.Errorf("QueryStream to ingesters: %w", context.Canceled), promapi.ErrorCanceled, 499},
		{"context deadline", fmt.Errorf("QueryStream to ingesters: %w", context.DeadlineExceeded), promapi.ErrorTimeout, http.StatusServiceUnavailable},
		{"ingesters unavailable", fmt.Errorf("expanding series: %w", unavailable), promapi.ErrorUnavailable, http.StatusServiceUnavailable},
		{"ingesters reject the request", rejected, promapi.ErrorBadData, http.StatusBadRequest},
		{"ring too few healthy", fmt.Errorf("find ingesters: %w", ring.ErrTooFewHealthy), promapi.ErrorUnavailable, http.StatusServiceUnavailable},
		{"too many samples", promql.ErrTooManySamples("x"), promapi.ErrorExec, http.StatusUnprocessableEntity},
		{"other", errors.New("vector cannot contain metrics with the same labelset"), promapi.ErrorExec, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := returnAPIError(tc.err)
			require.Equal(t, tc.wantType, e.Type)
			require.Equal(t, tc.wantCode, e.Status())
		})
	}
}

// TestQueryGate: at most max queries run; the others wait, counted as
// queued, until a slot frees or their context ends.
func TestQueryGate(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry(), nil)
	g := newQueryGate(1, m)
	require.Equal(t, 1, g.GetMaxConcurrent())
	idx, err := g.Insert(context.Background(), "q1")
	require.NoError(t, err)
	require.Equal(t, 1.0, testutil.ToFloat64(m.inflight))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := g.Insert(ctx, "q2")
		done <- err
	}()
	waitFor(t, func() bool { return testutil.ToFloat64(m.queued) == 1 })
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Equal(t, 0.0, testutil.ToFloat64(m.queued))

	go func() {
		_, err := g.Insert(context.Background(), "q3")
		done <- err
	}()
	waitFor(t, func() bool { return testutil.ToFloat64(m.queued) == 1 })
	g.Delete(idx)
	require.NoError(t, <-done)
	require.Equal(t, 1.0, testutil.ToFloat64(m.inflight))
	g.Delete(0)
	require.Equal(t, 0.0, testutil.ToFloat64(m.inflight))
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
