package alertmanager

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/tenant"
)

// TestUI: the page and every file it loads are served to a tenant; the
// API the page calls (api/v2 next to the page, as its script builds the
// URL) answers with that tenant's alerts; a request without a tenant gets
// 401, so a browser asks for credentials.
func TestUI(t *testing.T) {
	h := newHarness(t, defaultLimits(t))
	h.mustUpload("tenant-a", webhookConfig("https://hooks.example.com/a"))
	h.mustUpload("tenant-b", webhookConfig("https://hooks.example.com/b"))
	h.postAlerts("tenant-a", "AlertOfA")
	h.postAlerts("tenant-b", "AlertOfB")

	get := func(path, id string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if id != "" {
			req.Header.Set(tenant.Header, id)
		}
		rec := httptest.NewRecorder()
		h.api.ServeHTTP(rec, req)
		return rec
	}
	page := get("/alertmanager/", "tenant-a")
	require.Equal(t, http.StatusOK, page.Code, page.Body.String())
	require.Equal(t, "text/html; charset=utf-8", page.Header().Get("Content-Type"))
	require.Contains(t, page.Header().Get("Cache-Control"), "no-store")
	require.Equal(t, "DENY", page.Header().Get("X-Frame-Options"), "no other site may frame the page")
	require.Contains(t, page.Body.String(), "<title>Alertmanager</title>")

	// What the page loads, and what the script loads, relative to the page.
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1)
	script := get("/alertmanager/script.js", "tenant-a")
	require.Equal(t, http.StatusOK, script.Code)
	refs = append(refs, regexp.MustCompile(`"(lib/[^"]+\.css)"`).FindAllStringSubmatch(script.Body.String(), -1)...)
	require.GreaterOrEqual(t, len(refs), 5, "the page's and the script's files: %v", refs)
	fonts := 0
	for _, ref := range refs {
		rec := get("/alertmanager/"+ref[1], "tenant-a")
		require.Equal(t, http.StatusOK, rec.Code, ref[1])
		require.NotEmpty(t, rec.Body.Len(), ref[1])
		if strings.HasSuffix(ref[1], ".css") {
			// The fonts the style sheet names that browsers take.
			for _, font := range regexp.MustCompile(`url\('\.\./(fonts/[^'?]+\.woff2?)`).FindAllStringSubmatch(rec.Body.String(), -1) {
				dir := ref[1][:strings.LastIndex(ref[1][:strings.LastIndex(ref[1], "/")], "/")+1]
				f := get("/alertmanager/"+dir+font[1], "tenant-a")
				require.Equal(t, http.StatusOK, f.Code, dir+font[1])
				fonts++
			}
		}
	}
	require.Equal(t, 2, fonts, "woff2 and woff of Font Awesome")
	// The script calls the API at the page's path + api/v2.
	require.Contains(t, script.Body.String(), `"/api/v2"`)
	alerts := get("/alertmanager/api/v2/alerts", "tenant-a")
	require.Equal(t, http.StatusOK, alerts.Code)
	require.Contains(t, alerts.Body.String(), "AlertOfA")
	require.NotContains(t, alerts.Body.String(), "AlertOfB")
	groups := get("/alertmanager/api/v2/alerts/groups", "tenant-b")
	require.Contains(t, groups.Body.String(), "AlertOfB")
	require.NotContains(t, groups.Body.String(), "AlertOfA")

	require.Equal(t, http.StatusUnauthorized, get("/alertmanager/", "").Code)
	require.Equal(t, http.StatusNotFound, get("/alertmanager/lib/nothing.css", "tenant-a").Code)
	require.Equal(t, http.StatusNotFound, get("/alertmanager/lib/", "tenant-a").Code, "a directory listing")
	// A tenant without a configuration gets the page; its API calls say why
	// they have nothing.
	require.Equal(t, http.StatusOK, get("/alertmanager/", "tenant-c").Code)
	require.Equal(t, http.StatusNotFound, get("/alertmanager/api/v2/status", "tenant-c").Code)
}

// TestUIWithTenantsFile: with -auth.tenants-file, a browser without
// credentials gets 401 with a Basic challenge (it asks for a user and
// password); with a tenant's user it gets the page, and the API calls it
// makes with the same credentials reach that tenant's Alertmanager.
func TestUIWithTenantsFile(t *testing.T) {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		require.NoError(t, err)
		return string(h)
	}
	file := filepath.Join(t.TempDir(), "tenants.yml")
	require.NoError(t, os.WriteFile(file, []byte(`tenants:
  - id: team-a
    users: [{name: alice, password_bcrypt: "`+hash("pw-a")+`"}]
  - id: team-b
    users: [{name: bob, password_bcrypt: "`+hash("pw-b")+`"}]
`), 0o600))
	authn, err := auth.New(auth.Config{TenantsFile: file, TenantsReloadInterval: time.Minute}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	lim := &swappableLimits{}
	lim.l.Store(defaultLimits(t))
	h := startWith(t, lim, tenant.Resolver{Auth: authn})

	do := func(handler http.Handler, method, path, user, pw, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	for user, pw := range map[string]string{"alice": "pw-a", "bob": "pw-b"} {
		rec := do(h.cfg, http.MethodPost, "/api/v1/alerts", user, pw, webhookConfig("https://hooks.example.com/"+user))
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}
	rec := do(h.api, http.MethodPost, "/alertmanager/api/v2/alerts", "alice", "pw-a", `[{"labels":{"alertname":"AlertOfA"}}]`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	rec = do(h.api, http.MethodGet, "/alertmanager/", "", "", "")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Contains(t, rec.Header().Values("WWW-Authenticate"), tenant.Challenges[0])
	rec = do(h.api, http.MethodGet, "/alertmanager/", "alice", "wrong", "")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	rec = do(h.api, http.MethodGet, "/alertmanager/", "alice", "pw-a", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "<title>Alertmanager</title>")
	rec = do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts", "alice", "pw-a", "")
	require.Contains(t, rec.Body.String(), "AlertOfA")
	rec = do(h.api, http.MethodGet, "/alertmanager/api/v2/alerts", "bob", "pw-b", "")
	require.Equal(t, http.StatusOK, rec.Code)
	require.NotContains(t, rec.Body.String(), "AlertOfA")
}
