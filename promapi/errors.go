package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"

	"github.com/strata-metrics/strata/tenant"
)

// ErrorType is the errorType of Prometheus' error JSON. Clients match on
// these strings: never rename one.
type ErrorType string

const (
	ErrorTimeout       ErrorType = "timeout"
	ErrorCanceled      ErrorType = "canceled"
	ErrorExec          ErrorType = "execution"
	ErrorBadData       ErrorType = "bad_data"
	ErrorInternal      ErrorType = "internal"
	ErrorUnavailable   ErrorType = "unavailable"
	ErrorNotFound      ErrorType = "not_found"
	ErrorNotAcceptable ErrorType = "not_acceptable"
	// ErrorUnauthorized and ErrorForbidden are not Prometheus' (it has no
	// authentication); they are the types Cortex- and Mimir-compatible
	// clients see for 401 and 403. bad_data would tell a client to fix
	// the query, when the credentials are what is wrong.
	ErrorUnauthorized ErrorType = "unauthorized"
	ErrorForbidden    ErrorType = "forbidden"
	// ErrorTooManyRequests is a refusal that will pass later (429), such
	// as a source throttled after failed logins.
	ErrorTooManyRequests ErrorType = "too_many_requests"
)

// StatusClientClosedConnection is nginx's 499, which Prometheus answers a
// canceled query with.
const StatusClientClosedConnection = 499

// HTTPStatus maps an error type to its status code as Prometheus'
// getDefaultErrorCode does, except "unavailable": Prometheus falls through
// to 500 for it (it only uses it while its TSDB starts), Strata answers
// 503 like Mimir, because it means a backend could not answer and a retry
// may succeed.
func (t ErrorType) HTTPStatus() int {
	switch t {
	case ErrorBadData:
		return http.StatusBadRequest
	case ErrorExec:
		return http.StatusUnprocessableEntity
	case ErrorCanceled:
		return StatusClientClosedConnection
	case ErrorTimeout, ErrorUnavailable:
		return http.StatusServiceUnavailable
	case ErrorNotFound:
		return http.StatusNotFound
	case ErrorNotAcceptable:
		return http.StatusNotAcceptable
	case ErrorUnauthorized:
		return http.StatusUnauthorized
	case ErrorForbidden:
		return http.StatusForbidden
	case ErrorTooManyRequests:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// Error is an API error: its type, the error the client reads, and a
// status code when it is not the type's.
type Error struct {
	Type ErrorType
	Err  error
	Code int // overrides Type's status when set
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status code of the response.
func (e *Error) Status() int {
	if e.Code != 0 {
		return e.Code
	}
	return e.Type.HTTPStatus()
}

// BadData is a bad_data error: the request is wrong, 400.
func BadData(err error) *Error { return &Error{Type: ErrorBadData, Err: err} }

// InvalidParam is Prometheus' error for a parameter that does not parse.
func InvalidParam(err error, parameter string) *Error {
	return BadData(fmt.Errorf("invalid parameter %q: %w", parameter, err))
}

// TenantError classifies an error of tenant.Resolver.FromHTTP or of an
// authenticator: unauthorized (401) when no tenant is established,
// forbidden (403) when credentials claim another tenant, bad_data (400)
// for a malformed tenant id.
func TenantError(err error) *Error {
	switch tenant.HTTPStatus(err) {
	case http.StatusUnauthorized:
		return &Error{Type: ErrorUnauthorized, Err: err}
	case http.StatusForbidden:
		return &Error{Type: ErrorForbidden, Err: err}
	case http.StatusTooManyRequests:
		return &Error{Type: ErrorTooManyRequests, Err: err}
	}
	return BadData(err)
}

// Classify returns the type Prometheus' returnAPIError gives a query or
// storage error, and false for an error it does not know (Prometheus
// says execution; the caller may know better). A deadline is timeout,
// 503, where Prometheus says execution, 422, for a storage that timed
// out: 503 tells a client that a retry may pass.
func Classify(err error) (ErrorType, bool) {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc):
		return ErrorCanceled, true
	case errors.As(err, &eqt):
		return ErrorTimeout, true
	case errors.As(err, &es):
		return ErrorInternal, true
	case errors.Is(err, context.Canceled):
		return ErrorCanceled, true
	case errors.Is(err, context.DeadlineExceeded):
		return ErrorTimeout, true
	}
	return ErrorExec, false
}
