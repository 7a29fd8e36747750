package storegateway

import (
	"errors"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb/encoding"
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

// grpcError classes err and turns it into its gRPC status
// (ingesterpb.ToStatus), as the ingester does: bad input is BAD_INPUT
// (InvalidArgument: the querier does not retry it), a block not found is
// NOT_FOUND, stopping is UNAVAILABLE, damaged block bytes DATA_LOSS (the
// querier does not ask another replica, which would read the same
// objects), context errors TIMEOUT or CANCELED and everything else
// UNSPECIFIED (Internal: the querier tries another replica).
func grpcError(err error) error {
	var bad *badInputError
	var invalid *tenant.InvalidError
	var nf *notFoundError
	class := ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED
	switch {
	case errors.As(err, &bad), errors.As(err, &invalid):
		class = ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT
	case errors.As(err, &nf):
		class = ingesterpb.ErrorClass_ERROR_CLASS_NOT_FOUND
	case isDataLoss(err):
		class = ingesterpb.ErrorClass_ERROR_CLASS_DATA_LOSS
	case errors.Is(err, errStopping):
		class = ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE
	default:
		return ingesterpb.ToStatus(err)
	}
	return ingesterpb.ToStatus(&ingesterpb.ClassError{Class: class, Msg: err.Error()})
}

// blockError is block id's failure for a response's block_errors.
func blockError(id ulid.ULID, err error) *storepb.BlockError {
	st := status.Convert(grpcError(err))
	return &storepb.BlockError{BlockId: id.String(), Code: uint32(st.Code()), Message: st.Message()}
}
