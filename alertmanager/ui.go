package alertmanager

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// uiFiles are upstream's web UI, built (ui/README.md says from where).
//
//go:embed ui/static
var uiFiles embed.FS

// uiHandler serves the UI under routePrefix: the page at routePrefix/,
// its script, icon and style sheets next to it. The page calls the API at
// api/v2 next to itself, so a browser that reached the page as a tenant
// (through a proxy that sets X-Scope-OrgID, or with the tenants file's
// credentials, which browsers send again) sees that tenant's Alertmanager.
func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(routePrefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the UI is read with GET", http.StatusMethodNotAllowed)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/") && r.URL.Path != routePrefix+"/" {
			http.NotFound(w, r) // no directory listings
			return
		}
		if r.URL.Path == routePrefix+"/" || r.URL.Path == routePrefix+"/index.html" {
			// The page names no tenant; never let a cache serve it to another.
			w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
			// No other site may frame it (a click there would create or
			// expire the tenant's silences).
			w.Header().Set("X-Frame-Options", "DENY")
			w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
			r.URL.Path = routePrefix + "/" // FileServer redirects .../index.html
		}
		files.ServeHTTP(w, r)
	})
}

// isUIPath reports whether path is the UI's, not the API's.
func isUIPath(path string) bool {
	rest, ok := strings.CutPrefix(path, routePrefix+"/")
	if !ok {
		return false
	}
	switch {
	case rest == "", rest == "index.html", rest == "script.js", rest == "favicon.ico":
		return true
	case strings.HasPrefix(rest, "lib/"):
		return true
	}
	return false
}
