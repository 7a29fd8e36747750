package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// Header carries the tenant id on HTTP requests, as in Cortex and Mimir.
const Header = "X-Scope-OrgID"

// Anonymous is the tenant of every request when multi-tenancy is off.
const Anonymous = "anonymous"

// MaxIDLength is the longest tenant id accepted, in bytes.
const MaxIDLength = 150

// ErrMissing means multi-tenancy is on and the request names no tenant: 401.
var ErrMissing = errors.New("no tenant id: set the " + Header + " header")

// InvalidError means the tenant id is malformed: 400.
type InvalidError struct {
	ID     string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid tenant id %q: %s", truncate(e.ID, 64), e.Reason)
}

// Validate checks that id is safe to use as a path element and in metrics:
// 1 to 150 bytes of ASCII letters, digits and !-_.*'(), and not "." or "..".
func Validate(id string) error {
	switch {
	case id == "":
		return &InvalidError{ID: id, Reason: "empty"}
	case len(id) > MaxIDLength:
		return &InvalidError{ID: id, Reason: fmt.Sprintf("%d bytes long, limit %d", len(id), MaxIDLength)}
	case id == "." || id == "..":
		return &InvalidError{ID: id, Reason: `"." and ".." are not allowed`}
	}
	for i := 0; i < len(id); i++ {
		if !safeChar(id[i]) {
			return &InvalidError{ID: id, Reason: fmt.Sprintf("character %s at byte %d is not allowed (letters, digits and !-_.*'() only)", quoteCharAt(id, i), i)}
		}
	}
	return nil
}

func safeChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}

// quoteCharAt quotes the character that starts at byte i of s: a whole
// UTF-8 sequence ('é', not the 'Ã' of its first byte), or the byte escaped
// when s is not valid UTF-8 there.
func quoteCharAt(s string, i int) string {
	r, size := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("'\\x%02x'", s[i])
	}
	return strconv.QuoteRune(r)
}

// truncate cuts s to at most n bytes at a character boundary, marking the
// cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Authenticator establishes who is calling from a request's credentials.
// auth.Authenticator implements it; tenant defines it so that the
// components that resolve tenants depend on this package alone.
type Authenticator interface {
	// Authenticate returns the tenant the request's credentials act as,
	// an *UnauthenticatedError (401) or a *ForbiddenError (403: the
	// X-Scope-OrgID header names another tenant). It must be safe for
	// concurrent use and must not read the request body.
	Authenticate(r *http.Request) (string, error)
}

// UnauthenticatedError means the request carries no valid credentials: 401.
// It matches ErrMissing under errors.Is, so code that maps ErrMissing to 401
// maps it too.
type UnauthenticatedError struct {
	Reason string
}

func (e *UnauthenticatedError) Error() string { return "unauthenticated: " + e.Reason }

// Is makes errors.Is(err, ErrMissing) true: both mean "no tenant established".
func (e *UnauthenticatedError) Is(target error) bool { return target == ErrMissing }

// ThrottledError means a source failed authentication too often and its
// next attempts are refused for a while without being checked: 429.
type ThrottledError struct {
	Source, User string
	RetryAfter   time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins from %s as user %q: retry in %s", e.Source, truncate(e.User, 64), e.RetryAfter.Round(time.Second))
}

// ForbiddenError means valid credentials of one tenant claim another
// through the header: 403.
type ForbiddenError struct {
	Authenticated, Claimed string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("credentials of tenant %q may not act as tenant %q (%s)", e.Authenticated, truncate(e.Claimed, 64), Header)
}

// Resolver turns an HTTP request into a tenant id.
type Resolver struct {
	// MultitenancyEnabled requires the header; when false every request
	// belongs to Anonymous and the header is ignored.
	MultitenancyEnabled bool
	// Auth, when set, decides the tenant from the request's credentials
	// whatever MultitenancyEnabled says; the header may only repeat it.
	// Leave it nil (not a typed nil pointer) when authentication is off.
	Auth Authenticator
	// WriteRefusal writes Middleware's refusals (the errors of Auth) in
	// the format of the route asked for; nil writes WriteError's plain
	// text on every route.
	WriteRefusal func(w http.ResponseWriter, r *http.Request, err error)
}

type authenticatedKey struct{}

// FromHTTP returns the request's tenant id, ErrMissing, an *InvalidError,
// or with Auth set an *UnauthenticatedError or a *ForbiddenError.
func (r Resolver) FromHTTP(req *http.Request) (string, error) {
	if r.Auth != nil {
		if id, ok := req.Context().Value(authenticatedKey{}).(string); ok {
			return id, nil // Middleware authenticated this request already
		}
		return r.Auth.Authenticate(req)
	}
	if !r.MultitenancyEnabled {
		return Anonymous, nil
	}
	vals := req.Header.Values(Header)
	if len(vals) == 0 {
		return "", ErrMissing
	}
	if len(vals) > 1 {
		return "", &InvalidError{ID: vals[0], Reason: fmt.Sprintf("%d %s headers, want one", len(vals), Header)}
	}
	if err := Validate(vals[0]); err != nil {
		return "", err
	}
	return vals[0], nil
}

// Middleware authenticates every request before next sees it when Auth is
// set, answering 401 (with WWW-Authenticate) or 403 itself, through
// WriteRefusal when set; next's
// FromHTTP then returns the tenant without authenticating again. Without
// Auth it returns next unchanged: tenants are resolved per route as before.
func (r Resolver) Middleware(next http.Handler) http.Handler {
	if r.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		id, err := r.Auth.Authenticate(req)
		if err != nil {
			if r.WriteRefusal != nil {
				r.WriteRefusal(w, req, err)
				return
			}
			WriteError(w, err)
			return
		}
		next.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), authenticatedKey{}, id)))
	})
}

// Challenges are the WWW-Authenticate values of a 401 from Middleware.
var Challenges = []string{`Basic realm="strata", charset="UTF-8"`, `Bearer realm="strata"`}

// AddChallenges adds the WWW-Authenticate challenges a 401 carries to h.
func AddChallenges(h http.Header) {
	for _, c := range Challenges {
		h.Add("WWW-Authenticate", c)
	}
}

// AddRetryAfter sets Retry-After (whole seconds, at least 1) when err is a
// *ThrottledError.
func AddRetryAfter(h http.Header, err error) {
	var te *ThrottledError
	if errors.As(err, &te) {
		h.Set("Retry-After", strconv.Itoa(max(1, int(te.RetryAfter.Round(time.Second)/time.Second))))
	}
}

// WriteError writes a FromHTTP or Authenticate error as a plain-text
// response with its status code, and the challenges with a 401.
func WriteError(w http.ResponseWriter, err error) {
	code := HTTPStatus(err)
	if code == http.StatusUnauthorized {
		AddChallenges(w.Header())
	}
	AddRetryAfter(w.Header(), err)
	http.Error(w, err.Error(), code)
}

// HTTPStatus maps a FromHTTP error to its status code.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrMissing): // UnauthenticatedError too
		return http.StatusUnauthorized
	case errors.As(err, new(*ForbiddenError)):
		return http.StatusForbidden
	case errors.As(err, new(*ThrottledError)):
		return http.StatusTooManyRequests
	}
	return http.StatusBadRequest
}
