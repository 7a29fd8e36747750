package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
)

// errorType is the errorType of Prometheus' error JSON.
type errorType string

const (
	errorTimeout       errorType = "timeout"
	errorCanceled      errorType = "canceled"
	errorExec          errorType = "execution"
	errorBadData       errorType = "bad_data"
	errorInternal      errorType = "internal"
	errorUnavailable   errorType = "unavailable"
	errorNotFound      errorType = "not_found"
	errorNotAcceptable errorType = "not_acceptable"
)

// statusClientClosedConnection is nginx's 499, which Prometheus answers a
// canceled query with.
const statusClientClosedConnection = 499

// httpStatus maps an error type to its status code as Prometheus'
// getDefaultErrorCode does, except "unavailable": Prometheus falls through
// to 500 for it (it only uses it while its TSDB starts), Strata answers
// 503 like Mimir, because it means ingesters could not answer and a retry
// may succeed.
func (t errorType) httpStatus() int {
	switch t {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout, errorUnavailable:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	case errorNotAcceptable:
		return http.StatusNotAcceptable
	}
	return http.StatusInternalServerError
}

type apiError struct {
	typ  errorType
	err  error
	code int // overrides typ's status when set
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.typ, e.err) }

func (e *apiError) status() int {
	if e.code != 0 {
		return e.code
	}
	return e.typ.httpStatus()
}

// returnAPIError classifies a query or storage error as Prometheus'
// returnAPIError does, plus the fan-out's classes: ingesters or
// store-gateways unavailable → unavailable (503), every ingester rejecting
// the request → bad_data, damaged long-term blocks whose data is nowhere
// else → internal (500: a retry cannot help, the error names the blocks),
// and a deadline → timeout (Prometheus says execution, 422, for a storage
// that timed out; 503 tells a client that a retry may pass).
func returnAPIError(err error) *apiError {
	return classify(err, errorExec)
}

// classify is returnAPIError with the type for errors it does not know.
func classify(err error, fallback errorType) *apiError {
	if err == nil {
		return nil
	}
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, new(*QueryTimeoutError)): // before the engine's timeout it caused
		return &apiError{typ: errorTimeout, err: err}
	case errors.As(err, &eqc):
		return &apiError{typ: errorCanceled, err: err}
	case errors.As(err, &eqt):
		return &apiError{typ: errorTimeout, err: err}
	case errors.As(err, &es):
		return &apiError{typ: errorInternal, err: err}
	case errors.Is(err, context.Canceled):
		return &apiError{typ: errorCanceled, err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: errorTimeout, err: err}
	case isBadInput(err):
		return &apiError{typ: errorBadData, err: err}
	case isUnavailable(err):
		return &apiError{typ: errorUnavailable, err: err}
	case isDataLoss(err):
		return &apiError{typ: errorInternal, err: err}
	}
	return &apiError{typ: fallback, err: err}
}
