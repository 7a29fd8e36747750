package promapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/httputil"

	"github.com/strata-metrics/strata/tenant"
)

// Result is what a handler function answers.
type Result struct {
	Data     any
	Err      *Error
	Warnings annotations.Annotations
	// Finalize, when set, runs after the response is written: it releases
	// what Data points into (a query's memory, a storage querier).
	Finalize func()
}

// Handler serves f's results as Prometheus does, compressed when the
// client accepts it: Err as the error JSON with its status, Data as a
// success, neither as 204. log receives failed writes and 5xx errors.
func Handler(log *slog.Logger, f func(r *http.Request) Result) http.Handler {
	return httputil.CompressionHandler{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := parseForm(r); err != nil {
			RespondError(w, log, err, nil)
			return
		}
		result := f(r)
		if result.Finalize != nil {
			defer result.Finalize()
		}
		if result.Err != nil {
			RespondError(w, log, result.Err, result.Data)
			return
		}
		if result.Data != nil {
			Respond(w, r, log, result.Data, result.Warnings)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
}

// maxFormBytes is the largest form body the API reads; net/http's own
// bound, named so that the refusal can say it.
const maxFormBytes = 10 << 20

// parseForm parses the request's parameters up front, so that a form too
// large or malformed is refused as such (413, 400) instead of reading as a
// request without parameters ("no expression found").
func parseForm(r *http.Request) *Error {
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	}
	err := r.ParseForm()
	if err == nil {
		return nil
	}
	if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
		return &Error{Type: ErrorBadData, Code: http.StatusRequestEntityTooLarge,
			Err: fmt.Errorf("the form body is over %d bytes; a query is at most -querier.max-expression-bytes long", int64(maxFormBytes))}
	}
	return BadData(fmt.Errorf("parse form: %w", err))
}

// Respond writes a success with data and warnings, the warnings' positions
// taken from the request's query parameter.
func Respond(w http.ResponseWriter, r *http.Request, log *slog.Logger, data any, warnings annotations.Annotations) {
	warn, info := warnings.AsStrings(r.FormValue("query"), 10, 10)
	err := EncodeSuccess(data, warn, info, func(b []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if n, err := w.Write(b); err != nil {
			log.Debug("write response", "url", r.URL, "bytes_written", n, "err", err)
		}
	})
	if err != nil {
		log.Error("encode response", "url", r.URL, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// RespondError writes Prometheus' error JSON with e's status code and
// data, which is usually nil. A 5xx is logged: it is the server's fault.
func RespondError(w http.ResponseWriter, log *slog.Logger, e *Error, data any) {
	code := e.Status()
	if code >= http.StatusInternalServerError {
		log.Warn("request failed", "type", e.Type, "err", e.Err)
	}
	err := EncodeError(e, data, func(b []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if n, err := w.Write(b); err != nil {
			log.Debug("write error response", "bytes_written", n, "err", err)
		}
	})
	if err != nil {
		log.Error("encode error response", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// IsAPIPath reports whether path belongs to the Prometheus HTTP API,
// whose every answer, errors included, is JSON: /api/v1/ except the
// remote-write receivers (/api/v1/push, /api/v1/write), which answer
// errors in plain text as Prometheus' own receiver does.
func IsAPIPath(path string) bool {
	if !strings.HasPrefix(path, "/api/v1/") {
		return false
	}
	switch path {
	case "/api/v1/push", "/api/v1/write":
		return false
	}
	return true
}

// WriteAuthError writes a refusal of tenant.Resolver.Middleware (for its
// WriteRefusal): on the API's paths (IsAPIPath) Prometheus' error JSON with
// TenantError's type and status, elsewhere tenant.WriteError's plain text.
// A 401 carries the WWW-Authenticate challenges either way.
func WriteAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if !IsAPIPath(r.URL.Path) {
		tenant.WriteError(w, err)
		return
	}
	e := TenantError(err)
	if e.Status() == http.StatusUnauthorized {
		tenant.AddChallenges(w.Header())
	}
	tenant.AddRetryAfter(w.Header(), err)
	RespondError(w, slog.New(slog.DiscardHandler), e, nil)
}
