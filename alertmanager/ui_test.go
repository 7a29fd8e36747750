package alertmanager

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
