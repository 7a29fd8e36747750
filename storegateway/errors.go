package storegateway

import (
	"context"
	"errors"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/tenant"
)

// badInputError is a request that can never succeed: an invalid tenant,
// matcher or block id, or a block that is not the tenant's.
type badInputError struct{ msg string }

func (e *badInputError) Error() string { return e.msg }

// dataLossError is a block whose stored bytes are damaged: a chunk whose
// checksum does not match, a length field that cannot be, a chunk that
// would end past its segment file. Every replica reads the same objects,
// so the querier must not ask another store-gateway for the block.
type dataLossError struct{ err error }

func (e *dataLossError) Error() string { return e.err.Error() }
func (e *dataLossError) Unwrap() error { return e.err }

// isDataLoss reports whether err means damaged block bytes: ours, or a
// checksum failure of Prometheus' index reader.
func isDataLoss(err error) bool {
	var dl *dataLossError
	return errors.As(err, &dl) || errors.Is(err, encoding.ErrInvalidChecksum)
}

// isBadInput reports whether err is the request's fault (it would fail on
// every replica): a block error of that kind fails the whole request.
func isBadInput(err error) bool {
	var bad *badInputError
	var invalid *tenant.InvalidError
	return errors.As(err, &bad) || errors.As(err, &invalid)
}

// errStopping is a request that came in while the store-gateway stops.
var errStopping = errors.New("store-gateway is stopping")

// grpcError maps err to a gRPC status whose details carry the class, as
// the ingester's do: bad input is InvalidArgument (the querier does not
// retry it), a block not found is NotFound, stopping is Unavailable,
// damaged block bytes DataLoss (the querier does not ask another replica,
// which would read the same objects) and everything else Internal (the
// querier tries another replica).
func grpcError(err error) error {
	var bad *badInputError
	var invalid *tenant.InvalidError
	var nf *notFoundError
	switch {
	case errors.As(err, &bad), errors.As(err, &invalid):
		return statusError(codes.InvalidArgument, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, err.Error())
	case errors.As(err, &nf):
		return statusError(codes.NotFound, ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED, err.Error())
	case isDataLoss(err):
		return statusError(codes.DataLoss, ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED, err.Error())
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

// blockError is block id's failure for a response's block_errors.
func blockError(id ulid.ULID, err error) *storepb.BlockError {
	st := status.Convert(grpcError(err))
	return &storepb.BlockError{BlockId: id.String(), Code: uint32(st.Code()), Message: st.Message()}
}
