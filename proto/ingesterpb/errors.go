package ingesterpb

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ClassError is an error with its class: what a server hands ToStatus and
// what a client gets back from FromStatus. Msg is the whole message (with
// its "[strata-...]" id), carried byte for byte.
type ClassError struct {
	Class ErrorClass
	// RejectedSamples counts the samples of a push that were rejected (the
	// rest were appended); 0 elsewhere.
	RejectedSamples int64
	Msg             string
}

func (e *ClassError) Error() string { return e.Msg }

// classCodes is the one table between classes and gRPC codes, both ways.
var classCodes = [...]codes.Code{
	ErrorClass_ERROR_CLASS_UNSPECIFIED: codes.Internal,
	ErrorClass_ERROR_CLASS_BAD_INPUT:   codes.InvalidArgument,
	ErrorClass_ERROR_CLASS_LIMITED:     codes.ResourceExhausted,
	ErrorClass_ERROR_CLASS_UNAVAILABLE: codes.Unavailable,
	ErrorClass_ERROR_CLASS_NOT_FOUND:   codes.NotFound,
	ErrorClass_ERROR_CLASS_DATA_LOSS:   codes.DataLoss,
	ErrorClass_ERROR_CLASS_TIMEOUT:     codes.DeadlineExceeded,
	ErrorClass_ERROR_CLASS_CANCELED:    codes.Canceled,
}

// Code is the gRPC code of class c: Internal for UNSPECIFIED and classes
// this build does not know.
func (c ErrorClass) Code() codes.Code {
	if c >= 0 && int(c) < len(classCodes) {
		return classCodes[c]
	}
	return codes.Internal
}

// ClassOfCode is the class whose code is c (the inverse of Code), for a
// code that travelled without its status, as storepb.BlockError carries
// it (the store-gateway client reads every store-gateway error so);
// UNSPECIFIED for a code no class has.
func ClassOfCode(c codes.Code) ErrorClass {
	for class, code := range classCodes {
		if code == c {
			return ErrorClass(class)
		}
	}
	return ErrorClass_ERROR_CLASS_UNSPECIFIED
}

// ToStatus turns err into the gRPC status error a server returns: a
// *ClassError (possibly wrapped; the message is err's whole text) gets its
// class's code and ErrorDetails; a context error gets TIMEOUT or CANCELED;
// a gRPC status error passes unchanged; anything else is UNSPECIFIED
// (codes.Internal). Nil stays nil.
func ToStatus(err error) error {
	var ce *ClassError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return newStatus(ce.Class, ce.RejectedSamples, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return newStatus(ErrorClass_ERROR_CLASS_TIMEOUT, 0, err.Error())
	case errors.Is(err, context.Canceled):
		return newStatus(ErrorClass_ERROR_CLASS_CANCELED, 0, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return newStatus(ErrorClass_ERROR_CLASS_UNSPECIFIED, 0, err.Error())
}

func newStatus(class ErrorClass, rejected int64, msg string) error {
	code := class.Code()
	st, err := status.New(code, msg).WithDetails(&ErrorDetails{Class: class, RejectedSamples: rejected})
	if err != nil {
		return status.Error(code, msg) // cannot happen: ErrorDetails always marshals
	}
	return st.Err()
}

// FromStatus turns an error a gRPC client returned back into its class:
// the ErrorDetails' class when the server sent one; else, for the codes
// gRPC itself returns on a connection or call that failed (Unavailable,
// DeadlineExceeded, Canceled), their class; else UNSPECIFIED (a bare
// ResourceExhausted, say, is gRPC's message size limit, not a limit that
// will pass). A context error that never became a status is TIMEOUT or
// CANCELED, and a *ClassError (a client's own, possibly wrapped) keeps its
// class. Msg is the status message (err's text when err is no status).
// Nil gives nil.
func FromStatus(err error) *ClassError {
	var own *ClassError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &own): // classed on the client's side, never sent
		return &ClassError{Class: own.Class, RejectedSamples: own.RejectedSamples, Msg: err.Error()}
	}
	st, ok := status.FromError(err)
	if !ok {
		class := ErrorClass_ERROR_CLASS_UNSPECIFIED
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			class = ErrorClass_ERROR_CLASS_TIMEOUT
		case errors.Is(err, context.Canceled):
			class = ErrorClass_ERROR_CLASS_CANCELED
		}
		return &ClassError{Class: class, Msg: err.Error()}
	}
	ce := &ClassError{Msg: st.Message()}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		ce.Class = ClassOfCode(st.Code())
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*ErrorDetails); ok {
			if ed.GetClass() != ErrorClass_ERROR_CLASS_UNSPECIFIED {
				ce.Class = ed.GetClass()
			}
			ce.RejectedSamples = ed.GetRejectedSamples()
			break
		}
	}
	return ce
}
