package tenant

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fakeAuth knows one token per tenant: "Bearer <tenant>".
type fakeAuth struct{ calls int }

func (f *fakeAuth) Authenticate(r *http.Request) (string, error) {
	f.calls++
	v := r.Header.Get("Authorization")
	if len(v) <= len("Bearer ") || Validate(v[len("Bearer "):]) != nil {
		return "", &UnauthenticatedError{Reason: "invalid credentials"}
	}
	id := v[len("Bearer "):]
	for _, claimed := range r.Header.Values(Header) {
		if claimed != id {
			return "", &ForbiddenError{Authenticated: id, Claimed: claimed}
		}
	}
	return id, nil
}

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{ErrMissing, http.StatusUnauthorized},
		{&UnauthenticatedError{Reason: "x"}, http.StatusUnauthorized},
		{fmt.Errorf("push: %w", &UnauthenticatedError{Reason: "x"}), http.StatusUnauthorized},
		{&ForbiddenError{Authenticated: "a", Claimed: "b"}, http.StatusForbidden},
		{&InvalidError{ID: "..", Reason: "x"}, http.StatusBadRequest},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := HTTPStatus(tc.err); got != tc.want {
				t.Fatalf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
	// Code that knows only ErrMissing (the distributor) maps 401 right.
	if !errors.Is(&UnauthenticatedError{}, ErrMissing) {
		t.Fatal("UnauthenticatedError does not match ErrMissing")
	}
}

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resolver   Resolver
		auth       string
		orgID      string
		wantStatus int
		wantTenant string
	}{
		{"auth off passes through", Resolver{MultitenancyEnabled: true}, "", "team-a", 200, "team-a"},
		{"auth off, no header: the route decides", Resolver{MultitenancyEnabled: true}, "", "", 401, ""},
		{"no credentials", Resolver{Auth: &fakeAuth{}}, "", "", 401, ""},
		{"credentials", Resolver{Auth: &fakeAuth{}}, "Bearer team-a", "", 200, "team-a"},
		{"credentials win over multitenancy off", Resolver{Auth: &fakeAuth{}}, "Bearer team-a", "", 200, "team-a"},
		{"own tenant in header", Resolver{MultitenancyEnabled: true, Auth: &fakeAuth{}}, "Bearer team-a", "team-a", 200, "team-a"},
		{"other tenant in header", Resolver{MultitenancyEnabled: true, Auth: &fakeAuth{}}, "Bearer team-a", "team-b", 403, ""},
		{"refusal through WriteRefusal", Resolver{Auth: &fakeAuth{}, WriteRefusal: teapot}, "", "", http.StatusTeapot, ""},
		{"WriteRefusal not called on success", Resolver{Auth: &fakeAuth{}, WriteRefusal: teapot}, "Bearer team-a", "", 200, "team-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gotTenant string
			route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, err := tc.resolver.FromHTTP(r)
				if err != nil {
					WriteError(w, err)
					return
				}
				gotTenant = id
			})
			r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.orgID != "" {
				r.Header.Set(Header, tc.orgID)
			}
			w := httptest.NewRecorder()
			tc.resolver.Middleware(route).ServeHTTP(w, r)
			if w.Code != tc.wantStatus || gotTenant != tc.wantTenant {
				t.Fatalf("got %d tenant %q, want %d tenant %q; body %s", w.Code, gotTenant, tc.wantStatus, tc.wantTenant, w.Body)
			}
			if w.Code == 401 && tc.resolver.Auth != nil && len(w.Header().Values("WWW-Authenticate")) != len(Challenges) {
				t.Fatalf("401 without challenges: %v", w.Header())
			}
			if f, ok := tc.resolver.Auth.(*fakeAuth); ok && w.Code == 200 && f.calls != 1 {
				t.Fatalf("authenticated %d times, want once (the route reuses the middleware's result)", f.calls)
			}
		})
	}
}

// teapot is a WriteRefusal that shows it was called.
func teapot(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusTeapot) }

func TestFromHTTPWithAuth(t *testing.T) {
	// Without the middleware in front, FromHTTP authenticates by itself.
	res := Resolver{Auth: &fakeAuth{}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, err := res.FromHTTP(r); HTTPStatus(err) != http.StatusUnauthorized {
		t.Fatalf("no credentials: %v", err)
	}
	r.Header.Set("Authorization", "Bearer team-a")
	r.Header.Set(Header, "team-b")
	if _, err := res.FromHTTP(r); HTTPStatus(err) != http.StatusForbidden {
		t.Fatalf("claiming another tenant: %v", err)
	}
}
