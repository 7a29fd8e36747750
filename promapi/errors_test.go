package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/tenant"
)

// TestErrorStatus pins each error class to its errorType and status code:
// clients retry on 503 and 499 and give up on 4xx, so a change here
// changes what every client does.
func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		typ  ErrorType
		code int
	}{
		{ErrorBadData, http.StatusBadRequest},
		{ErrorExec, http.StatusUnprocessableEntity},
		{ErrorCanceled, StatusClientClosedConnection},
		{ErrorTimeout, http.StatusServiceUnavailable},
		{ErrorInternal, http.StatusInternalServerError},
		{ErrorUnavailable, http.StatusServiceUnavailable},
		{ErrorNotFound, http.StatusNotFound},
		{ErrorNotAcceptable, http.StatusNotAcceptable},
		{ErrorUnauthorized, http.StatusUnauthorized},
		{ErrorForbidden, http.StatusForbidden},
		{ErrorType("other"), http.StatusInternalServerError},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			require.Equal(t, tc.code, tc.typ.HTTPStatus())
			require.Equal(t, tc.code, (&Error{Type: tc.typ, Err: errors.New("x")}).Status())
		})
	}
	t.Run("code overrides the type's", func(t *testing.T) {
		e := &Error{Type: ErrorUnavailable, Err: errors.New("x"), Code: http.StatusTooManyRequests}
		require.Equal(t, http.StatusTooManyRequests, e.Status())
	})
}

// TestClassify: the classes of query and storage errors every API server
// shares, as Prometheus' returnAPIError, and what it leaves to the caller.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		want  ErrorType
		known bool
	}{
		{"engine canceled", promql.ErrQueryCanceled("x"), ErrorCanceled, true},
		{"engine timeout", promql.ErrQueryTimeout("x"), ErrorTimeout, true},
		{"engine storage", promql.ErrStorage{Err: errors.New("x")}, ErrorInternal, true},
		{"context canceled", fmt.Errorf("select: %w", context.Canceled), ErrorCanceled, true},
		{"context deadline", fmt.Errorf("select: %w", context.DeadlineExceeded), ErrorTimeout, true},
		{"too many samples", promql.ErrTooManySamples("x"), ErrorExec, false},
		{"other", errors.New("vector cannot contain metrics with the same labelset"), ErrorExec, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, known := Classify(tc.err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.known, known)
		})
	}
}

// TestTenantError: a request without a tenant is unauthorized, not
// bad_data: the credentials are what to fix, not the query.
func TestTenantError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ErrorType
		code int
	}{
		{"no X-Scope-OrgID", tenant.ErrMissing, ErrorUnauthorized, http.StatusUnauthorized},
		{"bad credentials", &tenant.UnauthenticatedError{Reason: "invalid credentials"}, ErrorUnauthorized, http.StatusUnauthorized},
		{"another tenant claimed", &tenant.ForbiddenError{Authenticated: "a", Claimed: "b"}, ErrorForbidden, http.StatusForbidden},
		{"invalid tenant id", tenant.Validate("../etc"), ErrorBadData, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := TenantError(tc.err)
			require.Equal(t, tc.want, e.Type)
			require.Equal(t, tc.code, e.Status())
			require.ErrorIs(t, e, tc.err)
		})
	}
}
