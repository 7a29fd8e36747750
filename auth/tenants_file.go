package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/tenant"
)

// TenantsFile is the YAML of -auth.tenants-file:
//
//	tenants:
//	  - id: team-a
//	    # sha256sum of the token, hex: `printf %s "$TOKEN" | sha256sum`
//	    bearer_tokens_sha256: [9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08]
//	    users:
//	      - name: prom
//	        # `htpasswd -nbBC 10 prom "$PASSWORD"`, or any bcrypt hasher
//	        password_bcrypt: $2y$10$...
//
// Tokens are stored as SHA-256 digests, not in the clear: a leaked file does
// not leak tokens, and since tokens are long random strings an unsalted fast
// digest cannot be reversed by guessing. Passwords are chosen by people, so
// they get bcrypt. Several tokens per tenant allow rotating them without an
// outage.
type TenantsFile struct {
	Tenants []TenantEntry `yaml:"tenants"`
}

// TenantEntry is one tenant's credentials.
type TenantEntry struct {
	ID                 string      `yaml:"id"`
	BearerTokensSHA256 []string    `yaml:"bearer_tokens_sha256"`
	Users              []UserEntry `yaml:"users"`
}

// UserEntry is one basic-auth user.
type UserEntry struct {
	Name           string `yaml:"name"`
	PasswordBcrypt string `yaml:"password_bcrypt"`
}

// table is a parsed tenants file; never modified once built.
type table struct {
	tokens map[[sha256.Size]byte]string // token digest → tenant
	users  map[string]user              // user name → tenant and hash
	sum    [sha256.Size]byte            // digest of the file's bytes
}

type user struct {
	tenant string
	hash   []byte
}

// parseTenantsFile parses and checks a tenants file: tenant ids valid and
// unique, digests 64 hex digits, user names (no ':') and tokens unique across
// the file, bcrypt hashes well formed.
func parseTenantsFile(b []byte) (*table, error) {
	var f TenantsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	t := &table{tokens: map[[sha256.Size]byte]string{}, users: map[string]user{}, sum: sha256.Sum256(b)}
	seen := map[string]bool{}
	for i, e := range f.Tenants {
		if err := tenant.Validate(e.ID); err != nil {
			return nil, fmt.Errorf("tenants[%d]: %w", i, err)
		}
		if seen[e.ID] {
			return nil, fmt.Errorf("tenants[%d]: tenant %q listed twice", i, e.ID)
		}
		seen[e.ID] = true
		for j, h := range e.BearerTokensSHA256 {
			var d [sha256.Size]byte
			if n, err := hex.Decode(d[:], []byte(h)); err != nil || n != sha256.Size || len(h) != 2*sha256.Size {
				return nil, fmt.Errorf("tenant %q: bearer_tokens_sha256[%d] is not 64 hex digits (a SHA-256 digest of the token)", e.ID, j)
			}
			if other, dup := t.tokens[d]; dup {
				return nil, fmt.Errorf("tenant %q: bearer_tokens_sha256[%d] is also a token of tenant %q", e.ID, j, other)
			}
			t.tokens[d] = e.ID
		}
		for j, u := range e.Users {
			switch {
			case u.Name == "":
				return nil, fmt.Errorf("tenant %q: users[%d] has no name", e.ID, j)
			case strings.ContainsAny(u.Name, ":\x00\r\n"):
				return nil, fmt.Errorf("tenant %q: user %q: ':' and control characters are not allowed in basic-auth user names", e.ID, u.Name)
			}
			if other, dup := t.users[u.Name]; dup {
				return nil, fmt.Errorf("tenant %q: user %q is also a user of tenant %q", e.ID, u.Name, other.tenant)
			}
			if _, err := bcrypt.Cost([]byte(u.PasswordBcrypt)); err != nil {
				return nil, fmt.Errorf("tenant %q: user %q: password_bcrypt is not a bcrypt hash: %w", e.ID, u.Name, err)
			}
			t.users[u.Name] = user{tenant: e.ID, hash: []byte(u.PasswordBcrypt)}
		}
	}
	return t, nil
}
