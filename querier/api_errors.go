package querier

import (
	"errors"

	"github.com/strata-metrics/strata/promapi"
)

// returnAPIError classifies a query or storage error as Prometheus'
// returnAPIError does (promapi.Classify), plus the querier's classes: a
// tenant's query timeout → timeout, ingesters or store-gateways
// unavailable → unavailable (503), every ingester rejecting the request →
// bad_data, damaged long-term blocks whose data is nowhere else → internal
// (500: a retry cannot help, the error names the blocks); anything else is
// execution (422).
func returnAPIError(err error) *promapi.Error {
	return classify(err, promapi.ErrorExec)
}

// classify is returnAPIError with the type for errors it does not know.
func classify(err error, fallback promapi.ErrorType) *promapi.Error {
	if err == nil {
		return nil
	}
	if errors.As(err, new(*QueryTimeoutError)) { // before the engine's timeout it caused
		return &promapi.Error{Type: promapi.ErrorTimeout, Err: err}
	}
	if typ, ok := promapi.Classify(err); ok {
		return &promapi.Error{Type: typ, Err: err}
	}
	switch {
	case isBadInput(err):
		return promapi.BadData(err)
	case isUnavailable(err):
		return &promapi.Error{Type: promapi.ErrorUnavailable, Err: err}
	case isDataLoss(err):
		return &promapi.Error{Type: promapi.ErrorInternal, Err: err}
	}
	return &promapi.Error{Type: fallback, Err: err}
}
