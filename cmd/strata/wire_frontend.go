package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/strata-metrics/strata/frontend"
	"github.com/strata-metrics/strata/querier"
)

// runsFrontend reports whether -target=target runs the query-frontend.
func runsFrontend(target string) bool {
	i := slices.IndexFunc(modules(), func(d moduleDef) bool { return d.name == "query-frontend" })
	return modules()[i].runsTarget(target)
}

// rangeDiverter mounts the querier's range-query routes on mux, the
// query-frontend's downstream in process, and every other route on the
// server as usual.
type rangeDiverter struct {
	querier.Router
	mux *http.ServeMux
}

func (d rangeDiverter) Handle(pattern, route string, h http.Handler) {
	if strings.HasSuffix(pattern, "/api/v1/query_range") {
		d.mux.Handle(pattern, h)
		return
	}
	d.Router.Handle(pattern, route, h)
}

// newFrontend puts the query-frontend in front of the queriers: with
// -target=all the querier of this process, called in process (no HTTP
// hop) for range queries only, every other API route served by the
// querier as before; with -target=query-frontend the queriers at
// -frontend.downstream-url, every other /api/v1/ path passed through.
func newFrontend(w *wiring) (*module, error) {
	deps := frontend.Deps{
		Tenants: w.tenants, Limits: w.overrides,
		Log: w.log.With("component", "query-frontend"), Reg: w.reg,
		MaxQueryLength:       w.cfg.Querier.MaxQueryLength,
		OutOfOrderTimeWindow: w.cfg.Ingester.OutOfOrderTimeWindow,
	}
	if w.frontendDownstream != nil {
		deps.Downstream = w.frontendDownstream
	}
	f, err := frontend.New(w.cfg.Frontend, deps)
	if err != nil {
		return nil, fmt.Errorf("create query-frontend: %w", err)
	}
	f.RegisterRoutes(w.srv)
	f.RegisterRoutes(prefixRouter{r: w.srv, prefix: "/prometheus"})
	if w.frontendDownstream == nil {
		f.RegisterPassthrough(w.srv)
		f.RegisterPassthrough(prefixRouter{r: w.srv, prefix: "/prometheus"})
	}
	return &module{run: f.Run}, nil
}
