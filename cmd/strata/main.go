package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		os.Exit(1)
	}
}

// run is the whole process; tests call it in-process with their own args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "backfill" {
		return runBackfill(ctx, args[1:], stdout, stderr)
	}
	cfg, _, err := parseConfig(args)
	if err != nil {
		return err
	}
	if cfg.printVersion {
		_, err := fmt.Fprint(stdout, currentBuild())
		return err
	}
	log := cfg.Server.NewLogger(stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)

	// With a cluster secret every gRPC call in and out carries it.
	var secrets *auth.ClusterSecrets
	var grpcOpts []grpc.ServerOption
	if cfg.Auth.ClusterSecretFile != "" {
		if secrets, err = auth.LoadClusterSecrets(cfg.Auth.ClusterSecretFile); err != nil {
			return err
		}
		grpcOpts = secrets.ServerOptions()
	}
	srv := server.New(cfg.Server, log, reg, reg, grpcOpts...)
	httpL, grpcL, err := srv.Listen()
	if err != nil {
		return err
	}
	advertise := cfg.Instance.Addr
	if advertise == "" {
		advertise = advertiseAddr(grpcL.Addr(), cfg.Target)
	}
	w, err := newWiring(cfg, srv, secrets, advertise, log, reg)
	if err != nil {
		_, _ = httpL.Close(), grpcL.Close()
		return err
	}
	p := &process{cfg: cfg, w: w, srv: srv, log: log, died: make(chan string, 1)}
	err = p.makeModules(modules())
	if err == nil {
		err = p.start(ctx, httpL, grpcL, stdout)
	}
	if p.server == nil { // the server closes them once it serves
		_, _ = httpL.Close(), grpcL.Close()
	}
	if err != nil && ctx.Err() != nil {
		err = nil // asked to stop while starting: a clean shutdown
	}
	if err == nil {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "cause", context.Cause(ctx))
		case name := <-p.died:
			log.Error("component stopped on its own; shutting down", "component", name)
		}
	}
	err = errors.Join(err, p.shutdown())
	log.Info("stopped", "err", err)
	return err
}

// process runs the modules of one target and stops them in order.
type process struct {
	cfg  *Config
	w    *wiring
	srv  *server.Server
	log  *slog.Logger
	died chan string // a task that returned before it was stopped

	// mods are the target's modules in start order; made before start.
	mods                                     []*running
	gossip, runtime, authn, server, announce *task
}

// startTimeout bounds each start-up step that waits on the network.
const startTimeout = 30 * time.Second

// makeModules makes the modules of the target, each after those it depends
// on. On error the caller still calls shutdown (the buckets opened so far
// are closed there).
func (p *process) makeModules(defs []moduleDef) error {
	order, err := orderModules(defs, p.cfg.Target)
	if err != nil {
		return err
	}
	for _, d := range order {
		m, err := d.new(p.w)
		if err != nil {
			return err
		}
		m.name = d.name
		p.mods = append(p.mods, &running{module: m})
	}
	return nil
}

// start starts gossip, the server, then the modules in order. It returns
// when they run; a module with an activation rule turns ACTIVE later (the
// ingester after its WAL replay). On error the caller still calls shutdown.
func (p *process) start(ctx context.Context, httpL, grpcL net.Listener, stdout io.Writer) error {
	w := p.w
	// A bad overrides file stops the start; later, a bad edit keeps the
	// last good one (logged and counted).
	if err := w.overrides.Load(); err != nil {
		return fmt.Errorf("load -runtime-config.file: %w", err)
	}
	p.runtime = goTask("runtime config", p.died, w.overrides.Run)
	if w.authn != nil {
		p.authn = goTask("tenants file", p.died, w.authn.Run)
	}
	p.gossip = goTask("memberlist", p.died, w.kv.Run)
	if err := p.waitFor(ctx, "gossip to start", func() bool { return w.kv.Addr() != "" }); err != nil {
		return err
	}
	for _, m := range p.mods {
		p.addReadyChecks(m)
	}
	p.server = goTask("server", p.died, func(ctx context.Context) error { return p.srv.Serve(ctx, httpL, grpcL) })
	if err := p.waitJoin(ctx); err != nil {
		return err
	}
	for _, m := range p.mods {
		if err := p.startModule(ctx, m); err != nil {
			return err
		}
	}
	p.announce = goTask("announce", p.died, func(ctx context.Context) error {
		if waitReady(ctx, p.srv.Ready) == nil {
			p.printReady(stdout, httpL.Addr().(*net.TCPAddr))
		}
		<-ctx.Done()
		return nil
	})
	return nil
}

// printReady tells a person where to point Prometheus and Grafana, and
// tests and scripts the addresses (they parse the "HTTP:" and "Gossip:"
// lines).
func (p *process) printReady(w io.Writer, httpAddr *net.TCPAddr) {
	scheme := "http"
	if p.cfg.Server.HTTPTLS.Enabled() {
		scheme = "https"
	}
	base := fmt.Sprintf("%s://%s", scheme, hostPort(httpAddr))
	fmt.Fprintf(w, "Strata is ready (target=%s, instance %s, data in %s).\n", p.cfg.Target, p.cfg.Instance.ID, p.cfg.DataDir)
	if p.runs("distributor") {
		fmt.Fprintf(w, "  Prometheus:  remote_write: [{url: %s/api/v1/push}]\n", base)
	}
	if p.runs("querier") {
		fmt.Fprintf(w, "  Grafana:     Prometheus data source, URL %s\n", base)
	}
	if p.runs("ruler") {
		fmt.Fprintf(w, "  Rules:       POST one group in YAML to %s/config/v1/rules/<namespace>; alerts at %s/prometheus/api/v1/alerts\n", base, base)
	}
	if p.runs("alertmanager") {
		fmt.Fprintf(w, "  Alerts:      Grafana Alertmanager data source (implementation Mimir), URL %s; config: POST %s/api/v1/alerts\n", base, base)
	}
	fmt.Fprintf(w, "  Status:      %s/ready  %s/metrics  %s/ring  %s/memberlist\n", base, base, base, base)
	fmt.Fprintf(w, "  HTTP:        %s\n", base)
	fmt.Fprintf(w, "  Gossip:      %s (other processes join with -memberlist.join=%s)\n", p.w.kv.Addr(), p.w.kv.Addr())
}

// waitFor polls cond until it holds, a task dies, ctx ends or startTimeout.
func (p *process) waitFor(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case name := <-p.died:
			return fmt.Errorf("wait for %s: %s stopped", what, name)
		case <-t.C:
		}
	}
	return nil
}

// joinWait bounds the wait for the first join of the gossip seeds: past it
// the modules register with what this process knows (it keeps joining).
const joinWait = 15 * time.Second

// waitJoin waits until gossip has first tried the seeds: an instance that
// registers in a ring picks its tokens between those it sees, and before
// the join it sees none (ingesters that all take the same spread own
// 20/40/40 % instead of a third each).
func (p *process) waitJoin(ctx context.Context) error {
	t := time.NewTimer(joinWait)
	defer t.Stop()
	select {
	case <-p.w.kv.JoinTried():
		return nil
	case <-t.C:
		p.log.Warn("gossip seeds not joined yet; registering in the rings with what this process knows", "waited", joinWait)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for gossip to join: %w", ctx.Err())
	case name := <-p.died:
		return fmt.Errorf("wait for gossip to join: %s stopped", name)
	}
}

// waitReady polls check until it passes or ctx ends.
func waitReady(ctx context.Context, check server.ReadyCheck) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if check(ctx) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
