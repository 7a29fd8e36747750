package storegateway

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/tenant"
)

// badInputError is a request that can never succeed: an invalid tenant,
// matcher or block id, or a block that is not the tenant's.
type badInputError struct{ msg string }

func (e *badInputError) Error() string { return e.msg }

// errStopping is a request that came in while the store-gateway stops.
var errStopping = errors.New("store-gateway is stopping")

// grpcError maps err to a gRPC status whose details carry the class, as
// the ingester's do: bad input is InvalidArgument (the querier does not
// retry it), a block not found is NotFound, stopping is Unavailable and
// everything else Internal (the querier tries another replica).
func grpcError(err error) error {
	var bad *badInputError
	var invalid *tenant.InvalidError
	var nf *notFoundError
	switch {
	case errors.As(err, &bad), errors.As(err, &invalid):
		return statusError(codes.InvalidArgument, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, err.Error())
	case errors.As(err, &nf):
		return statusError(codes.NotFound, ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED, err.Error())
	case errors.Is(err, errStopping):
		return statusError(codes.Unavailable, ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return statusError(codes.Internal, ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED, err.Error())
}

func statusError(code codes.Code, class ingesterpb.ErrorClass, msg string) error {
	st, err := status.New(code, msg).WithDetails(&ingesterpb.ErrorDetails{Class: class})
	if err != nil {
		return status.Error(code, msg) // cannot happen: ErrorDetails always marshals
	}
	return st.Err()
}
