package tenant

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ name, id, wantErr string }{
		{"plain", "team-a", ""},
		{"all safe punctuation", "a!-_.*'()z", ""},
		{"longest", strings.Repeat("a", MaxIDLength), ""},
		{"empty", "", "empty"},
		{"too long", strings.Repeat("a", MaxIDLength+1), "151 bytes long, limit 150"},
		{"dot", ".", `"." and ".." are not allowed`},
		{"dot dot", "..", `"." and ".." are not allowed`},
		{"path traversal", "../x", `character '/' at byte 2`},
		{"slash", "a/b", `character '/' at byte 1`},
		{"backslash", `a\b`, `character '\\' at byte 1`},
		{"space", "a b", `character ' ' at byte 1`},
		{"nul", "a\x00b", `character '\x00' at byte 1`},
		{"newline", "a\nb", `character '\n' at byte 1`},
		{"unicode lookalike", "tenаnt", `character 'а' at byte 3`}, // Cyrillic а, whole, not the mojibake of its first byte
		{"fullwidth slash", "a／b", `character '／' at byte 1`},
		{"invalid utf-8", "a\xc3(b", `character '\xc3' at byte 1`},
		{"pipe for multi-tenant queries", "a|b", `character '|' at byte 1`},
		{"percent encoding", "%2e%2e", `character '%' at byte 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.id)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tc.id, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate(%q) = %v, want error containing %q", tc.id, err, tc.wantErr)
			}
			if !errors.As(err, new(*InvalidError)) {
				t.Fatalf("error %T is not an *InvalidError", err)
			}
		})
	}
}

func TestFromHTTP(t *testing.T) {
	for _, tc := range []struct {
		name       string
		multi      bool
		headers    []string
		want       string
		wantStatus int
	}{
		{"single tenant ignores header", false, []string{"x"}, Anonymous, 0},
		{"single tenant without header", false, nil, Anonymous, 0},
		{"multi tenant", true, []string{"team-a"}, "team-a", 0},
		{"missing", true, nil, "", http.StatusUnauthorized},
		{"invalid", true, []string{"../etc"}, "", http.StatusBadRequest},
		{"two headers", true, []string{"a", "b"}, "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, h := range tc.headers {
				r.Header.Add(Header, h)
			}
			got, err := Resolver{MultitenancyEnabled: tc.multi}.FromHTTP(r)
			if tc.wantStatus != 0 {
				if err == nil || HTTPStatus(err) != tc.wantStatus {
					t.Fatalf("got %q, %v; want status %d", got, err, tc.wantStatus)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"team-a", "", "..", "../x", "a/b", strings.Repeat("z", 151), "tenаnt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if Validate(id) != nil {
			return
		}
		// Whatever passes must be safe as one path element.
		if id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") || len(id) > MaxIDLength || id == "" {
			t.Fatalf("Validate accepted unsafe id %q", id)
		}
	})
}

// TestInvalidErrorCutsAtCharacter: a long unicode tenant id is cut in its
// message at a character boundary, so the message stays valid UTF-8.
func TestInvalidErrorCutsAtCharacter(t *testing.T) {
	id := "a" + strings.Repeat("é", 100)
	err := Validate(id)
	if err == nil || !utf8.ValidString(err.Error()) {
		t.Fatalf("Validate(%q) = %v: want an error in valid UTF-8", id, err)
	}
	if want := `invalid tenant id "a` + strings.Repeat("é", 31) + `..."`; !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not contain %q", err, want)
	}
}
