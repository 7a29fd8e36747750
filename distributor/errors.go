package distributor

import (
	"errors"
	"net/http"

	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// The push path (Push and the HTTP handler) returns exactly one of these
// classes (or a tenant or ring error); httpStatus maps them to HTTP, once,
// and an in-process caller of Push tells them apart with errors.As. Remote-write senders drop a
// batch on 4xx (but 429 when told to retry it) and retry it on 5xx, so the
// class decides whether data is lost or resent: only input that can never
// succeed gets a 4xx.

// BadInputError means the request, or some of its series, can never be
// accepted: HTTP 400. The good series of the request were kept.
type BadInputError struct{ Msg string }

func (e *BadInputError) Error() string { return e.Msg }

// TooLargeError means the body exceeds -distributor.max-recv-msg-size,
// compressed or decompressed: HTTP 413 (the sender drops it).
type TooLargeError struct{ Msg string }

func (e *TooLargeError) Error() string { return e.Msg }

// UnsupportedMediaTypeError means a Content-Type or Content-Encoding the
// distributor does not take: HTTP 415, as Prometheus' own receiver answers.
type UnsupportedMediaTypeError struct{ Msg string }

func (e *UnsupportedMediaTypeError) Error() string { return e.Msg }

// MethodNotAllowedError means a method other than POST: HTTP 405.
type MethodNotAllowedError struct{ Method string }

func (e *MethodNotAllowedError) Error() string {
	return "method " + e.Method + " not allowed: remote-write uses POST"
}

// LimitedError means a limit that will pass later turned the push away:
// HTTP 429: the tenant's ingestion or request rate limit
// (push_ratelimit.go, push_requestrate.go) or an ingester's
// (ERROR_CLASS_LIMITED).
type LimitedError struct{ Msg string }

func (e *LimitedError) Error() string { return e.Msg }

// RequestTimeoutError means the body did not arrive within the server's
// read deadline (-server.http-read-timeout): 408, nothing was stored.
type RequestTimeoutError struct{ Msg string }

func (e *RequestTimeoutError) Error() string { return e.Msg }

// IngesterError means some series did not reach a quorum of its replicas
// because ingesters failed, timed out or were unreachable: HTTP 500. The
// sender retries; nothing of the request was acknowledged.
type IngesterError struct{ Msg string }

func (e *IngesterError) Error() string { return e.Msg }

// httpStatus maps an error of the push path to its HTTP status.
func httpStatus(err error) int {
	switch {
	case errors.As(err, new(*HADedupedError)):
		return http.StatusAccepted // a non-elected HA replica: dropped, not retried
	case errors.As(err, new(*BadInputError)):
		return http.StatusBadRequest // retrying cannot help
	case errors.As(err, new(*tenant.InvalidError)):
		return http.StatusBadRequest
	case errors.As(err, new(*tenant.ForbiddenError)):
		return http.StatusForbidden // credentials of another tenant
	case errors.Is(err, tenant.ErrMissing):
		return http.StatusUnauthorized
	case errors.As(err, new(*MethodNotAllowedError)):
		return http.StatusMethodNotAllowed
	case errors.As(err, new(*TooLargeError)):
		return http.StatusRequestEntityTooLarge // 4xx: the sender drops it
	case errors.As(err, new(*UnsupportedMediaTypeError)):
		return http.StatusUnsupportedMediaType
	case errors.As(err, new(*LimitedError)), errors.As(err, new(*tenant.ThrottledError)):
		return http.StatusTooManyRequests // will pass later
	case errors.As(err, new(*RequestTimeoutError)):
		return http.StatusRequestTimeout // the body did not arrive in time
	case errors.Is(err, ring.ErrTooFewHealthy), errors.Is(err, ring.ErrEmpty):
		return http.StatusServiceUnavailable // the ring cannot place a quorum now
	}
	return http.StatusInternalServerError // IngesterError and the unexpected
}

// reason is a stable id of a validation rule: it ends every 4xx message in
// brackets and labels the discarded_* metrics. Never rename one: users
// search for them and alerts match on them.
type reason uint8

const (
	reasonMissingMetricName reason = iota
	reasonInvalidMetricName
	reasonInvalidLabelName
	reasonInvalidLabelValue
	reasonDuplicateLabelNames
	reasonMaxLabelNames
	reasonLabelNameTooLong
	reasonLabelValueTooLong
	reasonTooFarInFuture
	reasonTooOld
	reasonInvalidHistogram
	reasonExemplarInvalidLabels
	reasonExemplarLabelsTooLong
	reasonExemplarMissingTimestamp
	reasonMaxExemplars
	reasonMetadataMissingName
	reasonMetadataTooLong
	reasonMetadataInvalidUTF8
	numReasons
)

var reasonIDs = [numReasons]string{
	reasonMissingMetricName:        "strata-missing-metric-name",
	reasonInvalidMetricName:        "strata-invalid-metric-name",
	reasonInvalidLabelName:         "strata-invalid-label-name",
	reasonInvalidLabelValue:        "strata-invalid-label-value",
	reasonDuplicateLabelNames:      "strata-duplicate-label-names",
	reasonMaxLabelNames:            "strata-max-label-names-per-series",
	reasonLabelNameTooLong:         "strata-label-name-too-long",
	reasonLabelValueTooLong:        "strata-label-value-too-long",
	reasonTooFarInFuture:           "strata-sample-too-far-in-future",
	reasonTooOld:                   "strata-sample-too-old",
	reasonInvalidHistogram:         "strata-invalid-native-histogram",
	reasonExemplarInvalidLabels:    "strata-exemplar-invalid-labels",
	reasonExemplarLabelsTooLong:    "strata-exemplar-labels-too-long",
	reasonExemplarMissingTimestamp: "strata-exemplar-missing-timestamp",
	reasonMaxExemplars:             "strata-max-exemplars-per-series",
	reasonMetadataMissingName:      "strata-metadata-missing-metric-name",
	reasonMetadataTooLong:          "strata-metadata-too-long",
	reasonMetadataInvalidUTF8:      "strata-metadata-invalid-utf8",
}

func (r reason) String() string { return reasonIDs[r] }

// Ids of request-level rejections (the whole body is refused).
const (
	idRequestTooLarge     = "strata-request-too-large"
	idInvalidSnappy       = "strata-invalid-snappy"
	idInvalidProtobuf     = "strata-invalid-protobuf"
	idUnsupportedEncoding = "strata-unsupported-content-encoding"
	idUnsupportedType     = "strata-unsupported-content-type"
	idInvalidSymbolRef    = "strata-invalid-symbol-reference"
	idInvalidOTLP         = "strata-invalid-otlp"
	idOTLPDelta           = "strata-otlp-delta-temporality"
	idInvalidCompression  = "strata-invalid-compression"
	idIngesterRejected    = "strata-ingester-rejected"
	idIngesterLimited     = "strata-ingester-limited"
	idNoQuorum            = "strata-no-quorum"
	idInflightPushBytes   = "strata-max-inflight-push-bytes"
)
