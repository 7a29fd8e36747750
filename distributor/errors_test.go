package distributor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"bad input", &BadInputError{Msg: "x"}, http.StatusBadRequest},
		{"wrapped bad input", fmt.Errorf("push: %w", &BadInputError{Msg: "x"}), http.StatusBadRequest},
		{"invalid tenant", &tenant.InvalidError{ID: "../x", Reason: "no"}, http.StatusBadRequest},
		{"missing tenant", tenant.ErrMissing, http.StatusUnauthorized},
		{"method", &MethodNotAllowedError{Method: "GET"}, http.StatusMethodNotAllowed},
		{"too large", &TooLargeError{Msg: "x"}, http.StatusRequestEntityTooLarge},
		{"media type", &UnsupportedMediaTypeError{Msg: "x"}, http.StatusUnsupportedMediaType},
		{"limited", &LimitedError{Msg: "x"}, http.StatusTooManyRequests},
		{"throttled credentials", &tenant.ThrottledError{Source: "192.0.2.1"}, http.StatusTooManyRequests},
		{"body too slow", &RequestTimeoutError{Msg: "x"}, http.StatusRequestTimeout},
		{"too few healthy", fmt.Errorf("find ingesters: %w", ring.ErrTooFewHealthy), http.StatusServiceUnavailable},
		{"empty ring", fmt.Errorf("find ingesters: %w", ring.ErrEmpty), http.StatusServiceUnavailable},
		{"ingesters failed", &IngesterError{Msg: "x"}, http.StatusInternalServerError},
		{"unexpected", errors.New("boom"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, httpStatus(tc.err)) })
	}
}

func TestClassify(t *testing.T) {
	withClass := func(c ingesterpb.ErrorClass) error {
		st, err := status.New(codes.Internal, "x").WithDetails(&ingesterpb.ErrorDetails{Class: c})
		require.NoError(t, err)
		return st.Err()
	}
	for _, tc := range []struct {
		name string
		err  error
		want failureClass
	}{
		{"ok", nil, classOK},
		{"bad input detail", withClass(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT), classBadInput},
		{"limited detail", withClass(ingesterpb.ErrorClass_ERROR_CLASS_LIMITED), classLimited},
		{"unavailable detail", withClass(ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE), classUnavailable},
		{"unspecified detail", withClass(ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED), classError},
		{"deadline code", status.Error(codes.DeadlineExceeded, "slow"), classTimeout},
		{"context deadline", fmt.Errorf("push: %w", context.DeadlineExceeded), classTimeout},
		{"unavailable code", status.Error(codes.Unavailable, "conn refused"), classUnavailable},
		// The class travels in the details, never guessed from code or text.
		{"invalid argument without details", status.Error(codes.InvalidArgument, "bad input"), classError},
		{"plain error", errors.New("boom"), classError},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, classify(tc.err)) })
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"utf8 names", []string{"-distributor.name-validation-scheme=utf8"}, ""},
		{"unknown scheme", []string{"-distributor.name-validation-scheme=ascii"}, `-distributor.name-validation-scheme must be "legacy" or "utf8", got "ascii"`},
		{"tiny body", []string{"-distributor.max-recv-msg-size=10"}, "-distributor.max-recv-msg-size must be at least 1024, got 10"},
		{"no timeout", []string{"-distributor.remote-timeout=0s"}, "-distributor.remote-timeout must be positive, got 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			fs := flag.NewFlagSet("", flag.ContinueOnError)
			c.RegisterFlags(fs)
			require.NoError(t, fs.Parse(tc.args))
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestReasonIDsAreStable(t *testing.T) {
	seen := map[string]bool{}
	for r := range numReasons {
		id := r.String()
		require.True(t, strings.HasPrefix(id, "strata-"), "reason %d has id %q", r, id)
		require.False(t, seen[id], "duplicate id %q", id)
		seen[id] = true
	}
}
