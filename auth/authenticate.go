package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/strata-metrics/strata/tenant"
)

// maxCachedPasswords bounds the cache of checked basic-auth credentials.
// Each entry is about 100 bytes; a tenant's few agents use a handful.
const maxCachedPasswords = 4096

// The outcomes of strata_auth_requests_total.
const (
	outcomeOK        = "ok"
	outcomeMissing   = "missing"   // no Authorization header
	outcomeMalformed = "malformed" // an Authorization header that does not parse
	outcomeInvalid   = "invalid"   // unknown token, unknown user or wrong password
	outcomeForbidden = "forbidden" // valid credentials claiming another tenant
	outcomeThrottled = "throttled" // basic credentials not checked: their source failed too often (throttle.go)
)

// Authenticator maps a request's credentials to its tenant with the
// tenants file. It implements tenant.Authenticator and is goroutine-safe.
type Authenticator struct {
	cfg Config
	log *slog.Logger

	table atomic.Pointer[table]
	seen  fileSig // last file state looked at by reload; Run's goroutine only

	mu        sync.Mutex
	cache     map[[sha256.Size]byte]cached // sha256(len(user), user, password) → result
	dummyHash []byte                       // checked for unknown users; tests lower its cost
	checking  singleflight.Group           // one bcrypt per credential at a time
	fails     *failures                    // throttle.go: failed checks per source address
	slots     chan struct{}                // throttle.go: bcrypt checks running at once

	outcomes   map[string]prometheus.Counter
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

// cached is a bcrypt check that passed. It counts only while table is the
// current one, so a reload that removes a user or changes a password takes
// effect at once, with no race against checks that were in flight.
type cached struct {
	tenant string
	table  *table
}

// New reads the tenants file once; Run keeps it current.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Authenticator, error) {
	f := promauto.With(reg)
	a := &Authenticator{
		cfg: cfg, log: log, cache: map[[sha256.Size]byte]cached{}, dummyHash: []byte(dummyHash),
		fails: newFailures(time.Now), slots: bcryptSlots(),
		outcomes: map[string]prometheus.Counter{},
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_auth_tenants_file_last_reload_successful",
			Help: "1 if the last read of -auth.tenants-file parsed; 0 while the previous good file is in use.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_auth_tenants_file_last_reload_success_timestamp_seconds",
			Help: "When -auth.tenants-file was last loaded successfully.",
		}),
	}
	requests := f.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_auth_requests_total",
		Help: "Authenticated requests by outcome: ok, missing, malformed, invalid (unknown credentials), forbidden (another tenant claimed) or throttled (basic credentials refused unchecked: their source failed too often).",
	}, []string{"outcome"})
	for _, o := range []string{outcomeOK, outcomeMissing, outcomeMalformed, outcomeInvalid, outcomeForbidden, outcomeThrottled} {
		a.outcomes[o] = requests.WithLabelValues(o)
	}
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Run rereads the tenants file when it changes until ctx is done. A file
// that does not parse is logged and counted; the last good one stays.
func (a *Authenticator) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.TenantsReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.reload(); err != nil {
				a.log.Warn("tenants file not reloaded; keeping the last good one", "err", err)
			}
		}
	}
}

// fileSig is what a poll compares: a change of either means "read again".
type fileSig struct {
	mtime time.Time
	size  int64
}

// reload reads the file if its mtime or size changed and swaps the table
// if the content changed and parses.
func (a *Authenticator) reload() error {
	st, err := os.Stat(a.cfg.TenantsFile)
	if err != nil {
		a.reloadOK.Set(0)
		return fmt.Errorf("stat -auth.tenants-file: %w", err)
	}
	sig := fileSig{mtime: st.ModTime(), size: st.Size()}
	if sig == a.seen && a.table.Load() != nil {
		return nil
	}
	b, err := os.ReadFile(a.cfg.TenantsFile)
	if err != nil {
		a.reloadOK.Set(0)
		return fmt.Errorf("read -auth.tenants-file: %w", err)
	}
	a.seen = sig
	if cur := a.table.Load(); cur != nil && cur.sum == sha256.Sum256(b) {
		return nil // touched, not changed
	}
	t, err := parseTenantsFile(b)
	if err != nil {
		a.reloadOK.Set(0)
		return fmt.Errorf("load -auth.tenants-file %s: %w", a.cfg.TenantsFile, err)
	}
	a.table.Store(t)
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.log.Info("tenants file loaded", "path", a.cfg.TenantsFile, "tokens", len(t.tokens), "users", len(t.users))
	return nil
}

// Authenticate implements tenant.Authenticator: the request's tenant from
// its Authorization header (Bearer token or Basic user and password), or a
// *tenant.UnauthenticatedError, or a *tenant.ForbiddenError when
// X-Scope-OrgID names a tenant other than the credentials'.
func (a *Authenticator) Authenticate(r *http.Request) (string, error) {
	id, outcome, err := a.authenticate(r)
	a.outcomes[outcome].Inc()
	return id, err
}

func (a *Authenticator) authenticate(r *http.Request) (string, string, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", outcomeMissing, &tenant.UnauthenticatedError{Reason: "no Authorization header; send a bearer token or basic-auth credentials"}
	case 1:
	default:
		return "", outcomeMalformed, &tenant.UnauthenticatedError{Reason: fmt.Sprintf("%d Authorization headers, want one", len(vals))}
	}
	c, err := parseAuthorization(vals[0])
	if err != nil {
		return "", outcomeMalformed, &tenant.UnauthenticatedError{Reason: err.Error()}
	}
	t := a.table.Load()
	var id string
	if c.bearer {
		// The lookup compares digests, not tokens: its timing tells an
		// attacker about the digest of their guess, which they cannot
		// steer, so it leaks nothing about a real token.
		id = t.tokens[sha256.Sum256([]byte(c.token))]
	} else {
		var throttled error
		if id, throttled = a.checkPassword(r, t, c.user, c.password); throttled != nil {
			return "", outcomeThrottled, throttled
		}
	}
	if id == "" {
		return "", outcomeInvalid, &tenant.UnauthenticatedError{Reason: "invalid credentials"}
	}
	for _, claimed := range r.Header.Values(tenant.Header) {
		if claimed != id {
			return "", outcomeForbidden, &tenant.ForbiddenError{Authenticated: id, Claimed: claimed}
		}
	}
	return id, outcomeOK, nil
}

// dummyHash costs as much to check as a real hash, so an unknown user takes
// as long as a wrong password and timing does not list the users.
// It is bcrypt("strata: no such user") at cost 10, bcrypt.DefaultCost.
const dummyHash = "$2a$10$JyJdzUf8ciyZWsf/eXA.eekezL8jS7loCey/Z0.nLaESfh0RLlFPK"

// checkPassword returns the user's tenant if password is right, else "".
// A right password is remembered (bcrypt costs tens of milliseconds); a
// wrong one is not, so that guesses cannot evict the agents' entries. A
// password not remembered is checked only if its source has failed checks
// left (else a *tenant.ThrottledError), by at most len(a.slots) checks at
// once (throttle.go).
func (a *Authenticator) checkPassword(r *http.Request, t *table, name, password string) (string, error) {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(name))) // no two (name, password) pairs share a key
	h.Write(n[:])
	h.Write([]byte(name))
	h.Write([]byte(password))
	var key [sha256.Size]byte
	h.Sum(key[:0])

	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && c.table == t {
		return c.tenant, nil
	}
	// The budget is per source and user: agents behind one address (a load
	// balancer) are not locked out by another agent's wrong password.
	src := sourceOf(r)
	budget := src + "\x00" + name
	if ok, wait := a.fails.allowed(budget); !ok {
		return "", &tenant.ThrottledError{Source: src, User: name, RetryAfter: wait}
	}
	// A Prometheus starting with many shards sends its first pushes at
	// once: they share one bcrypt check instead of paying one each.
	// The check waits for a slot only while its client waits; a caller
	// that shared the check of a client that left tries once more.
	ctx := r.Context()
	for range 2 {
		v, err, _ := a.checking.Do(string(key[:]), func() (any, error) {
			select {
			case a.slots <- struct{}{}:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			defer func() { <-a.slots }()
			return a.bcryptCheck(t, key, name, password), nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return "", nil // our client left: nothing to answer
			}
			continue
		}
		id := v.(string)
		if id == "" {
			a.fails.failed(budget)
		}
		return id, nil
	}
	return "", nil
}

func (a *Authenticator) bcryptCheck(t *table, key [sha256.Size]byte, name, password string) string {
	u, known := t.users[name]
	if !known {
		_ = bcrypt.CompareHashAndPassword(a.dummyHash, []byte(password))
		return ""
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(password)) != nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxCachedPasswords {
		for k, old := range a.cache { // evict stale entries, or one at random
			delete(a.cache, k)
			if old.table == t {
				break
			}
		}
	}
	a.cache[key] = cached{tenant: u.tenant, table: t}
	return u.tenant
}

// credentials is one parsed Authorization header.
type credentials struct {
	bearer         bool
	token          string // bearer
	user, password string // basic
}

// parseAuthorization parses "Bearer <token68>" or "Basic <base64(user:password)>"
// (RFC 6750, RFC 7617; scheme case-insensitive, one or more spaces after it).
// It accepts nothing else: no empty token, no characters outside token68,
// no padding errors, no user without ':'.
func parseAuthorization(v string) (credentials, error) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok {
		return credentials{}, errors.New("malformed Authorization header: want \"Bearer <token>\" or \"Basic <base64>\"")
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		return credentials{}, fmt.Errorf("malformed Authorization header: empty %s credentials", scheme)
	}
	if !isToken68(rest) {
		return credentials{}, errors.New("malformed Authorization header: credentials contain characters outside RFC 7235 token68")
	}
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return credentials{bearer: true, token: rest}, nil
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil {
			return credentials{}, errors.New("malformed Authorization header: basic credentials are not base64")
		}
		if !utf8.Valid(b) {
			return credentials{}, errors.New("malformed Authorization header: basic credentials are not UTF-8")
		}
		user, password, ok := strings.Cut(string(b), ":")
		if !ok || user == "" {
			return credentials{}, errors.New("malformed Authorization header: basic credentials are not user:password")
		}
		return credentials{user: user, password: password}, nil
	}
	return credentials{}, fmt.Errorf("unsupported Authorization scheme %q: want Bearer or Basic", truncate(scheme, 32))
}

// isToken68 reports whether s is RFC 7235 token68:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if strings.IndexByte("-._~+/", c) < 0 {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
