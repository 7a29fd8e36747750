package ingesterpb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// overTheWire is what a client gets of a server's status error: the
// status proto, marshalled and unmarshalled.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	b, merr := proto.Marshal(status.Convert(err).Proto())
	require.NoError(t, merr)
	sp := status.New(codes.OK, "").Proto() // a fresh message to decode into
	require.NoError(t, proto.Unmarshal(b, sp))
	return status.ErrorProto(sp)
}

// TestClassRoundTrip sends every class through ToStatus, the wire and
// FromStatus: class, rejected count and message come back unchanged, and
// each class has its own code.
func TestClassRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		class ErrorClass
		code  codes.Code
	}{
		{ErrorClass_ERROR_CLASS_UNSPECIFIED, codes.Internal},
		{ErrorClass_ERROR_CLASS_BAD_INPUT, codes.InvalidArgument},
		{ErrorClass_ERROR_CLASS_LIMITED, codes.ResourceExhausted},
		{ErrorClass_ERROR_CLASS_UNAVAILABLE, codes.Unavailable},
		{ErrorClass_ERROR_CLASS_NOT_FOUND, codes.NotFound},
		{ErrorClass_ERROR_CLASS_DATA_LOSS, codes.DataLoss},
		{ErrorClass_ERROR_CLASS_TIMEOUT, codes.DeadlineExceeded},
		{ErrorClass_ERROR_CLASS_CANCELED, codes.Canceled},
	} {
		t.Run(tc.class.String(), func(t *testing.T) {
			in := &ClassError{Class: tc.class, RejectedSamples: 7, Msg: `out of order sample for series {__name__="up"} [strata-sample-out-of-order]`}
			sent := ToStatus(in)
			require.Equal(t, tc.code, status.Code(sent))
			require.Equal(t, in, FromStatus(overTheWire(t, sent)))

			require.Equal(t, tc.class, ClassOfCode(tc.code))
			// Without ErrorDetails, only the codes gRPC itself returns on
			// failed calls give their class back.
			bare := FromStatus(status.Error(tc.code, "x")).Class
			switch tc.code {
			case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
				require.Equal(t, tc.class, bare)
			default:
				require.Equal(t, ErrorClass_ERROR_CLASS_UNSPECIFIED, bare)
			}

			// Wrapped: the message is the whole text.
			wrapped := ToStatus(fmt.Errorf("push: %w", in))
			require.Equal(t, &ClassError{Class: tc.class, RejectedSamples: 7, Msg: "push: " + in.Msg}, FromStatus(overTheWire(t, wrapped)))
		})
	}
	// Every class of the enum is in the table above.
	require.Len(t, ErrorClass_name, len(classCodes))
}

func TestToStatusFromStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   error
		want *ClassError
	}{
		{"nil", nil, nil},
		{"plain error", errors.New("disk full"), &ClassError{Class: ErrorClass_ERROR_CLASS_UNSPECIFIED, Msg: "disk full"}},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), &ClassError{Class: ErrorClass_ERROR_CLASS_TIMEOUT, Msg: "query: context deadline exceeded"}},
		{"canceled", context.Canceled, &ClassError{Class: ErrorClass_ERROR_CLASS_CANCELED, Msg: "context canceled"}},
		{"status passes", status.Error(codes.FailedPrecondition, "x"), &ClassError{Class: ErrorClass_ERROR_CLASS_UNSPECIFIED, Msg: "x"}},
		{"client's own class", fmt.Errorf("dial: %w", &ClassError{Class: ErrorClass_ERROR_CLASS_UNAVAILABLE, Msg: "refused"}), &ClassError{Class: ErrorClass_ERROR_CLASS_UNAVAILABLE, Msg: "dial: refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, FromStatus(ToStatus(tc.in)))
			require.Equal(t, tc.want, FromStatus(tc.in), "a client's own error")
		})
	}

	// Details with UNSPECIFIED leave the class to the code.
	st, err := status.New(codes.Unavailable, "stopping").WithDetails(&ErrorDetails{})
	require.NoError(t, err)
	require.Equal(t, ErrorClass_ERROR_CLASS_UNAVAILABLE, FromStatus(st.Err()).Class)
	require.Equal(t, ErrorClass_ERROR_CLASS_UNSPECIFIED, ClassOfCode(codes.Unknown))
	// An unknown class from a newer server keeps its number.
	st, err = status.New(codes.Internal, "x").WithDetails(&ErrorDetails{Class: 99})
	require.NoError(t, err)
	require.Equal(t, ErrorClass(99), FromStatus(st.Err()).Class)
	require.Equal(t, codes.Internal, ErrorClass(99).Code())
}
