#!/bin/sh
# Regenerates static/: upstream Alertmanager's web UI (the Elm one), built,
# as the last Alertmanager module that carries it built (v0.31.1's
# asset package) has it. The module Strata runs (v0.35.0) ships its UI
# sources only (ui/app/dist is built by upstream's Makefile with npm and
# Elm), so its ui package does not compile outside upstream's tree. The
# UI talks to api/v2 next to the page, which v0.35.0 serves unchanged.
# Run from this directory: ./generate.sh
set -eu
version=v0.31.1
here=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat > go.mod <<MOD
module uigen
go 1.25
require github.com/prometheus/alertmanager $version
MOD
cat > main.go <<'GO'
package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/prometheus/alertmanager/asset"
)

// keep are the files the UI loads: the page, its script, its style sheets
// and the fonts browsers take (woff2, woff).
var keep = map[string]bool{
	"/static/index.html": true, "/static/script.js": true, "/static/favicon.ico": true,
	"/static/lib/bootstrap-4.6.2-dist/css/bootstrap.min.css":           true,
	"/static/lib/elm-datepicker/css/elm-datepicker.css":                true,
	"/static/lib/font-awesome-4.7.0/css/font-awesome.min.css":          true,
	"/static/lib/font-awesome-4.7.0/fonts/fontawesome-webfont.woff2":   true,
	"/static/lib/font-awesome-4.7.0/fonts/fontawesome-webfont.woff":    true,
}

func main() {
	for p := range keep {
		f, err := asset.Assets.Open(p)
		if err != nil {
			panic(err)
		}
		dst := filepath.Join(os.Args[1], p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			panic(err)
		}
		w, err := os.Create(dst)
		if err != nil {
			panic(err)
		}
		if _, err := io.Copy(w, f); err != nil {
			panic(err)
		}
		f.Close()
		if err := w.Close(); err != nil {
			panic(err)
		}
	}
}
GO
GOFLAGS=-mod=mod go mod tidy
GOFLAGS=-mod=mod go run . "$work/out"
rm -rf "$here/static"
mv "$work/out/static" "$here/static"
