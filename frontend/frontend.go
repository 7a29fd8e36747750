package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	promhttputil "github.com/prometheus/prometheus/util/httputil"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/tenant"
)

// Deps are what the frontend is built from.
type Deps struct {
	// Downstream serves the queriers' API in process (-target=all); nil
	// proxies to Config.DownstreamURL.
	Downstream http.Handler
	Tenants    tenant.Resolver
	// Limits are the per-tenant legs in flight, cache freshness and TTL.
	Limits *limits.Overrides
	Log    *slog.Logger
	Reg    prometheus.Registerer
	// Now is the clock of the freshness bound; nil means time.Now.
	Now func() time.Time
	// MaxQueryLength is the queriers' -querier.max-query-length: a longer
	// range query is sent whole, so that they refuse it (each leg alone
	// would pass). The per-tenant max_query_length is read from Limits.
	MaxQueryLength time.Duration
	// OutOfOrderTimeWindow is the ingesters' -ingester.out-of-order-time-window
	// (a tenant's out_of_order_time_window override replaces it): samples
	// that old may still arrive, so nothing newer is cached.
	OutOfOrderTimeWindow time.Duration
}

// Frontend serves the Prometheus API in front of the queriers.
type Frontend struct {
	cfg        Config
	downstream http.Handler
	tenants    tenant.Resolver
	limits     *limits.Overrides
	log        *slog.Logger
	now        func() time.Time
	m          *metrics

	cache        cacheBackend // nil: no results cache
	cacheBackend string       // its metric label
	closeCache   func() error

	maxQueryLength time.Duration
	oooWindow      time.Duration   // Deps.OutOfOrderTimeWindow
	transport      *http.Transport // to -frontend.downstream-url; nil in process
	slots          tenantSlots
	// parser reads queries to find what splitting changes (@ start(),
	// range()); permissive: the querier decides what it accepts.
	parser parser.Parser
}

// New returns a Frontend. It does no I/O.
func New(cfg Config, deps Deps) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Limits == nil {
		return nil, errors.New("query-frontend needs the per-tenant limits")
	}
	f := &Frontend{
		cfg: cfg, downstream: deps.Downstream, tenants: deps.Tenants, limits: deps.Limits,
		log: deps.Log, now: deps.Now, m: newMetrics(deps.Reg), maxQueryLength: deps.MaxQueryLength,
		oooWindow:  deps.OutOfOrderTimeWindow,
		closeCache: func() error { return nil },
		parser: parser.NewParser(parser.Options{
			EnableExperimentalFunctions: true, ExperimentalDurationExpr: true,
			EnableExtendedRangeSelectors: true, EnableBinopFillModifiers: true,
		}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.downstream == nil {
		if cfg.DownstreamURL == "" {
			return nil, errors.New("-frontend.downstream-url must be set with -target=query-frontend")
		}
		u, _ := url.Parse(cfg.DownstreamURL) // Validate parsed it
		f.downstream = f.proxy(u)
	}
	f.cacheBackend = cfg.ResultsCache.Backend
	switch cfg.ResultsCache.Backend {
	case BackendEmbedded:
		f.cache = newEmbeddedCache(cfg.ResultsCache.MaxBytes, f.now, f.m)
	case BackendMemcached:
		mc, err := newMemcachedCache(cfg.ResultsCache.Memcache, f.m)
		if err != nil {
			return nil, err
		}
		f.cache, f.closeCache = mc, mc.Close
	}
	f.slots.m = map[string]*tenantSlot{}
	return f, nil
}

// Run waits for ctx, then closes the cache's connections.
func (f *Frontend) Run(ctx context.Context) error {
	<-ctx.Done()
	if f.transport != nil {
		f.transport.CloseIdleConnections()
	}
	if err := f.closeCache(); err != nil {
		f.log.Warn("close results cache", "err", err)
	}
	return nil
}

// Router is where the frontend mounts its routes (*server.Server).
type Router interface {
	// Handle mounts h at pattern (http.ServeMux syntax), measured as route.
	Handle(pattern, route string, h http.Handler)
}

// RegisterRoutes mounts GET and POST /api/v1/query_range, split and
// cached.
func (f *Frontend) RegisterRoutes(r Router) {
	h := promhttputil.CompressionHandler{Handler: http.HandlerFunc(f.queryRange)}
	r.Handle("GET /api/v1/query_range", "api_v1_query_range", h)
	r.Handle("POST /api/v1/query_range", "api_v1_query_range", h)
}

// RegisterPassthrough mounts every other path of the Prometheus API
// (/api/v1/), sent to the queriers unchanged, headers included.
func (f *Frontend) RegisterPassthrough(r Router) {
	r.Handle("/api/v1/", "frontend_passthrough", f.downstream)
}

// proxy sends requests to the queriers at u, unchanged but for the
// hop-by-hop headers; u's path prefixes theirs.
func (f *Frontend) proxy(u *url.URL) http.Handler {
	f.transport = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			if id, err := f.tenants.FromHTTP(pr.In); err == nil {
				f.pinTenant(pr.Out.Header, id)
			}
		},
		Transport: f.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			code := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				code = http.StatusGatewayTimeout
			}
			promapi.RespondError(w, f.log, &promapi.Error{Type: promapi.ErrorUnavailable, Code: code,
				Err: fmt.Errorf("query-frontend: querier at -frontend.downstream-url did not answer: %w", err)}, nil)
		},
		ErrorLog: slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
}

// pinTenant sets the tenant header of a request to the queriers to the
// tenant the frontend resolved (with multi-tenancy or authentication):
// queriers that trust the header, behind a frontend that checks
// credentials, must not read another tenant than the one the frontend
// cached the answer for.
func (f *Frontend) pinTenant(h http.Header, tenantID string) {
	if f.tenants.MultitenancyEnabled || f.tenants.Auth != nil {
		h.Set(tenant.Header, tenantID)
	}
}

// maxFormBytes is net/http's bound of a form body, as the querier's.
const maxFormBytes = 10 << 20

func (f *Frontend) queryRange(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	if r.Body != nil && r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, maxFormBytes)
	}
	if err := r.ParseForm(); err != nil {
		promapi.RespondError(w, f.log, promapi.BadData(fmt.Errorf("parse form: %w", err)), nil)
		return
	}
	tenantID, err := f.tenants.FromHTTP(r)
	if err != nil {
		// As the querier answers it (querier/api.go: wrap).
		promapi.RespondError(w, f.log, promapi.TenantError(err), nil)
		return
	}
	rr, ok := f.parseRange(r, tenantID)
	if !ok {
		f.m.queries.WithLabelValues("passthrough").Inc()
		f.forward(w, r, tenantID)
		f.m.duration.WithLabelValues("passthrough").Observe(time.Since(t0).Seconds())
		return
	}
	f.m.queries.WithLabelValues("split").Inc()
	defer func() { f.m.duration.WithLabelValues("split").Observe(time.Since(t0).Seconds()) }()
	m, err := f.evaluate(r.Context(), rr)
	if err != nil {
		writeLegError(w, f.log, err)
		return
	}
	var buf bytes.Buffer
	if err := m.encode(&buf); err != nil {
		promapi.RespondError(w, f.log, &promapi.Error{Type: promapi.ErrorInternal, Err: fmt.Errorf("encode merged answer: %w", err)}, nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// forward sends a query_range request the frontend does not split to the
// queriers whole, its form (already read) as the body.
func (f *Frontend) forward(w http.ResponseWriter, r *http.Request, tenantID string) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, r.URL.Path, strings.NewReader(r.Form.Encode()))
	if err != nil {
		promapi.RespondError(w, f.log, &promapi.Error{Type: promapi.ErrorInternal, Err: fmt.Errorf("build request: %w", err)}, nil)
		return
	}
	f.copyHeaders(req, r, tenantID)
	// The frontend's own CompressionHandler compresses the answer for
	// the client; compressed by the querier too, it would be twice.
	req.Header.Del("Accept-Encoding")
	f.downstream.ServeHTTP(w, req)
}

// copyHeaders gives a request to the queriers the client's headers
// (credentials) as a form POST, naming the tenant the frontend resolved.
func (f *Frontend) copyHeaders(req, from *http.Request, tenantID string) {
	req.Header = from.Header.Clone()
	f.pinTenant(req.Header, tenantID)
	req.Header.Del("Content-Length")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = from.RemoteAddr
	req.Host = from.Host
}

// legError is a leg's failure: the queriers' answer (status and body, an
// error JSON), which the whole query answers with.
type legError struct {
	status      int
	contentType string
	body        []byte
}

func (e *legError) Error() string {
	return fmt.Sprintf("leg answered %d: %s", e.status, bytes.TrimSpace(e.body))
}

func writeLegError(w http.ResponseWriter, log *slog.Logger, err error) {
	var le *legError
	if errors.As(err, &le) {
		if le.contentType != "" {
			w.Header().Set("Content-Type", le.contentType)
		}
		w.WriteHeader(le.status)
		_, _ = w.Write(le.body)
		return
	}
	typ, _ := promapi.Classify(err)
	if typ == promapi.ErrorExec {
		typ = promapi.ErrorInternal
	}
	promapi.RespondError(w, log, &promapi.Error{Type: typ, Err: err}, nil)
}

// bufferedResponse keeps a leg's answer in memory.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// fetch asks the queriers for the points [start, end] of rr's query,
// holding one of the tenant's leg slots.
func (f *Frontend) fetch(ctx context.Context, rr *rangeRequest, start, end int64) (*matrix, error) {
	release, err := f.slots.acquire(ctx, rr.tenant, f.limits.For(rr.tenant).MaxQueryParallelism)
	if err != nil {
		return nil, err
	}
	defer release()
	f.m.legsInFlight.Inc()
	defer f.m.legsInFlight.Dec()
	ctx, cancel := context.WithTimeout(ctx, f.cfg.DownstreamTimeout)
	defer cancel()
	form := make(url.Values, len(rr.form))
	for k, v := range rr.form {
		form[k] = v
	}
	form.Set("query", rr.query)
	form.Set("start", formatTime(start))
	form.Set("end", formatTime(end))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rr.path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("build leg request: %w", err)
	}
	f.copyHeaders(req, rr.orig, rr.tenant)
	req.Header.Del("Accept-Encoding") // the answer is read here, not sent on
	resp := &bufferedResponse{header: http.Header{}}
	f.downstream.ServeHTTP(resp, req)
	if resp.status == 0 {
		resp.status = http.StatusOK
	}
	f.m.downstream.WithLabelValues(fmt.Sprint(resp.status)).Inc()
	if resp.status != http.StatusOK {
		return nil, &legError{status: resp.status, contentType: resp.header.Get("Content-Type"), body: resp.body.Bytes()}
	}
	m, err := decodeMatrix(resp.body.Bytes())
	if err != nil {
		return nil, fmt.Errorf("query-frontend: leg [%s, %s]: %w", formatTime(start), formatTime(end), err)
	}
	return m, nil
}

// formatTime writes milliseconds as the seconds the API parses, exactly.
func formatTime(ms int64) string {
	if ms < 0 {
		return fmt.Sprintf("-%d.%03d", -ms/1000, -ms%1000)
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// tenantSlots bounds each tenant's legs in flight (max_query_parallelism),
// over all its queries. A tenant's entry lives while it has legs waiting
// or in flight; a changed limit applies from the next entry.
type tenantSlots struct {
	mu sync.Mutex
	m  map[string]*tenantSlot
}

type tenantSlot struct {
	ch    chan struct{}
	users int
}

func (t *tenantSlots) acquire(ctx context.Context, tenantID string, n int) (func(), error) {
	t.mu.Lock()
	s, ok := t.m[tenantID]
	if !ok {
		s = &tenantSlot{ch: make(chan struct{}, max(1, n))}
		t.m[tenantID] = s
	}
	s.users++
	t.mu.Unlock()
	leave := func() {
		t.mu.Lock()
		if s.users--; s.users == 0 {
			delete(t.m, tenantID)
		}
		t.mu.Unlock()
	}
	release := func() { <-s.ch; leave() }
	select {
	case s.ch <- struct{}{}: // a free slot is taken first, whatever ctx
		return release, nil
	default:
	}
	select {
	case s.ch <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
