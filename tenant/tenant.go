package tenant

import (
	"errors"
	"fmt"
	"net/http"
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
			return &InvalidError{ID: id, Reason: fmt.Sprintf("character %q at byte %d is not allowed (letters, digits and !-_.*'() only)", rune(id[i]), i)}
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Resolver turns an HTTP request into a tenant id.
type Resolver struct {
	// MultitenancyEnabled requires the header; when false every request
	// belongs to Anonymous and the header is ignored.
	MultitenancyEnabled bool
}

// FromHTTP returns the request's tenant id, ErrMissing, or an *InvalidError.
func (r Resolver) FromHTTP(req *http.Request) (string, error) {
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

// HTTPStatus maps a FromHTTP error to its status code.
func HTTPStatus(err error) int {
	if errors.Is(err, ErrMissing) {
		return http.StatusUnauthorized
	}
	return http.StatusBadRequest
}
