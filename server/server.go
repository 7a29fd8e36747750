package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// ReadyCheck returns nil when its part of the process can serve.
type ReadyCheck func(ctx context.Context) error

// Server is one process's HTTP and gRPC servers.
type Server struct {
	cfg  Config
	log  *slog.Logger
	mux  *http.ServeMux
	grpc *grpc.Server

	mu     sync.Mutex
	checks map[string]ReadyCheck

	httpDuration *prometheus.HistogramVec
	grpcDuration *prometheus.HistogramVec
	inflight     *prometheus.GaugeVec

	httpAddr, grpcAddr chan net.Addr

	httpTLS, grpcTLS *listenerTLS // nil: plain text
	// guard protects the operator pages the server serves itself; set by
	// SetOperatorGuard before Serve, read on every request to them.
	guard          func(http.Handler) http.Handler
	guardedMetrics bool
	reg            prometheus.Registerer
	authed         http.Handler // mux behind the authentication middleware; nil: none
}

// New returns a Server; nothing listens until Run. gatherer serves /metrics.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer, grpcOpts ...grpc.ServerOption) *Server {
	f := promauto.With(reg)
	s := &Server{
		cfg: cfg, log: log, mux: http.NewServeMux(), checks: map[string]ReadyCheck{},
		httpDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "strata_request_duration_seconds",
			Help:                        "Time to serve HTTP and gRPC requests, by route and status code.",
			Buckets:                     prometheus.ExponentialBuckets(0.0005, 4, 10),
			NativeHistogramBucketFactor: 1.1,
		}, []string{"protocol", "route", "status_code"}),
		inflight: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_inflight_requests", Help: "Requests being served, by route.",
		}, []string{"protocol", "route"}),
		httpAddr: make(chan net.Addr, 1), grpcAddr: make(chan net.Addr, 1),
		reg: reg,
	}
	s.grpcDuration = s.httpDuration
	s.httpTLS = newListenerTLS(cfg.HTTPTLS, "http", []string{"h2", "http/1.1"}, log, reg)
	s.grpcTLS = newListenerTLS(cfg.GRPCTLS, "grpc", []string{"h2"}, log, reg)
	if s.grpcTLS != nil {
		grpcOpts = append([]grpc.ServerOption{grpc.Creds(credentials.NewTLS(s.grpcTLS.cfg))}, grpcOpts...)
	}
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.GRPCMaxRecvBytes),
		grpc.MaxSendMsgSize(cfg.GRPCMaxRecvBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentGRPCS)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: cfg.GRPCMaxConnectionIdle,
			// Ping a connection quiet for a minute; close it when the
			// peer does not answer within 20s (a dead machine).
			Time: time.Minute, Timeout: 20 * time.Second,
		}),
		grpc.ConnectionTimeout(cfg.GRPCConnectionTimeout),
		grpc.ChainUnaryInterceptor(s.unaryMetrics),
		grpc.ChainStreamInterceptor(s.streamMetrics),
	}, grpcOpts...)
	s.grpc = grpc.NewServer(opts...)

	s.Handle("/ready", "ready", http.HandlerFunc(s.serveReady))
	s.Handle("/metrics", "metrics", s.operatorPage(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}), true))
	if cfg.RegisterPprof {
		for path, h := range map[string]http.HandlerFunc{
			"/debug/pprof/": pprof.Index, "/debug/pprof/cmdline": pprof.Cmdline, "/debug/pprof/profile": pprof.Profile,
			"/debug/pprof/symbol": pprof.Symbol, "/debug/pprof/trace": pprof.Trace,
		} {
			s.mux.Handle(path, s.operatorPage(h, false))
		}
	}
	return s
}

// GRPC is the gRPC server services register on before Run.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Handle mounts h at pattern (http.ServeMux syntax), measured as route.
func (s *Server) Handle(pattern, route string, h http.Handler) {
	s.mux.Handle(pattern, s.instrument(route, h))
}

// AddReadyCheck makes /ready answer 503 while check fails.
func (s *Server) AddReadyCheck(name string, check ReadyCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// Ready reports the first failing readiness check, or nil.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, c := range s.checks {
		if err := c(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if err := s.Ready(r.Context()); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// RequireAuth puts every route mounted with Handle behind mw, typically
// tenant.Resolver.Middleware with an Authenticator; /ready stays open for
// probes, and /metrics for scrapers unless SetOperatorGuard covers it.
// Call it before Serve.
func (s *Server) RequireAuth(mw func(http.Handler) http.Handler) {
	s.authed = mw(s.mux)
}

// SetOperatorGuard puts guard (tenant.Resolver.OperatorOnly) in front of
// the operator pages the server serves itself: /debug/pprof/ (the command
// line names secret files; a profile costs CPU), and /metrics too when
// metricsToo (its series carry tenant ids; set it with built-in
// authentication, where scrapers can send the operator's credentials).
// Call it before Serve.
func (s *Server) SetOperatorGuard(guard func(http.Handler) http.Handler, metricsToo bool) {
	s.guard, s.guardedMetrics = guard, metricsToo
}

// operatorPage serves h behind the operator guard, if one is set (for
// /metrics only when the guard covers it).
func (s *Server) operatorPage(h http.Handler, metrics bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.guard == nil || (metrics && !s.guardedMetrics) {
			h.ServeHTTP(w, r)
			return
		}
		s.guard(h).ServeHTTP(w, r)
	})
}

// Handler is the HTTP handler with every mounted route, for tests.
func (s *Server) Handler() http.Handler {
	if s.authed == nil {
		return s.mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/ready" || (p == "/metrics" && !s.guardedMetrics) {
			s.mux.ServeHTTP(w, r)
			return
		}
		s.authed.ServeHTTP(w, r)
	})
}

// HTTPAddr blocks until the HTTP listener is bound and returns its address.
func (s *Server) HTTPAddr(ctx context.Context) (net.Addr, error) { return waitAddr(ctx, s.httpAddr) }

// GRPCAddr blocks until the gRPC listener is bound and returns its address.
func (s *Server) GRPCAddr(ctx context.Context) (net.Addr, error) { return waitAddr(ctx, s.grpcAddr) }

func waitAddr(ctx context.Context, ch chan net.Addr) (net.Addr, error) {
	select {
	case a := <-ch:
		ch <- a
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Listen reads the TLS files and binds both listeners, so that a caller
// learns bad files and bind errors (and the real ports of ":0") before
// anything else starts.
func (s *Server) Listen() (httpL, grpcL net.Listener, err error) {
	if err := s.httpTLS.load(); err != nil {
		return nil, nil, err
	}
	if err := s.grpcTLS.load(); err != nil {
		return nil, nil, err
	}
	httpL, err = net.Listen("tcp", s.cfg.HTTPListenAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("listen http on %s: %w", s.cfg.HTTPListenAddress, err)
	}
	grpcL, err = net.Listen("tcp", s.cfg.GRPCListenAddress)
	if err != nil {
		_ = httpL.Close()
		return nil, nil, fmt.Errorf("listen grpc on %s: %w", s.cfg.GRPCListenAddress, err)
	}
	s.httpAddr <- httpL.Addr()
	s.grpcAddr <- grpcL.Addr()
	return httpL, newLimitListener(grpcL, s.cfg.GRPCMaxConnections, s.reg), nil
}

// Serve serves on the listeners from Listen until ctx is done, then drains
// in-flight requests for at most -server.shutdown-timeout and returns.
func (s *Server) Serve(ctx context.Context, httpL, grpcL net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      s.cfg.HTTPWriteTimeout,
		IdleTimeout:       s.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	if s.httpTLS != nil {
		hs.TLSConfig = s.httpTLS.cfg
		go func() { errc <- ignoreClosed(hs.ServeTLS(httpL, "", "")) }()
	} else {
		go func() { errc <- ignoreClosed(hs.Serve(httpL)) }()
	}
	go func() { errc <- s.grpc.Serve(grpcL) }()
	s.log.Info("serving", "http", httpL.Addr().String(), "grpc", grpcL.Addr().String(), "http_tls", s.httpTLS != nil, "grpc_tls", s.grpcTLS != nil)

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		if first != nil {
			first = fmt.Errorf("serve: %w", first)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown deadline passed; closing connections", "err", err)
		_ = hs.Close()
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		s.log.Warn("grpc shutdown deadline passed; closing connections")
		s.grpc.Stop()
		<-stopped
	}
	// Collect both serve goroutines.
	for range 2 - boolToInt(first != nil) {
		<-errc
	}
	return first
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming responses streaming.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	inflight := s.inflight.WithLabelValues("http", route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inflight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			inflight.Dec()
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			s.httpDuration.WithLabelValues("http", route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

func (s *Server) unaryMetrics(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	g := s.inflight.WithLabelValues("grpc", info.FullMethod)
	g.Inc()
	resp, err := handler(ctx, req)
	g.Dec()
	s.grpcDuration.WithLabelValues("grpc", info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

func (s *Server) streamMetrics(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	g := s.inflight.WithLabelValues("grpc", info.FullMethod)
	g.Inc()
	err := handler(srv, ss)
	g.Dec()
	s.grpcDuration.WithLabelValues("grpc", info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}
