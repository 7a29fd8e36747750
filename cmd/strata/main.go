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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
)

// Set by the Makefile with -ldflags -X; empty in a plain `go build`.
var version, revision, branch, buildDate string

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
	cfg, _, err := parseConfig(args)
	if err != nil {
		return err
	}
	log := cfg.Server.NewLogger(stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)

	srv := server.New(cfg.Server, log, reg, reg)
	httpL, grpcL, err := srv.Listen()
	if err != nil {
		return err
	}
	advertise := cfg.Instance.Addr
	if advertise == "" {
		advertise = advertiseAddr(grpcL.Addr(), cfg.Target)
	}
	c, err := newComponents(cfg, srv, advertise, log, reg)
	if err != nil {
		_, _ = httpL.Close(), grpcL.Close()
		return err
	}
	p := &process{cfg: cfg, c: c, srv: srv, log: log, died: make(chan string, 1)}
	err = p.start(ctx, httpL, grpcL, stdout)
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

// process runs the components of one target and stops them in order.
type process struct {
	cfg  *Config
	c    *components
	srv  *server.Server
	log  *slog.Logger
	died chan string // a task that returned before it was stopped

	gossip, runtime, authn, server, ingester, distributor, querier *task
	ingLC, distLC, activate, announce                              *task
	compactor, compLC, storeGateway, sgLC, sgActivate, bucketIndex *task
	ingActive, distActive                                          atomic.Bool
	ingRegistered                                                  bool
}

// startTimeout bounds each start-up step that waits on the network.
const startTimeout = 30 * time.Second

// start starts gossip, the server, the components and their lifecyclers.
// It returns when they run; the ingester turns ACTIVE later, after its
// WAL replay. On error the caller still calls shutdown.
func (p *process) start(ctx context.Context, httpL, grpcL net.Listener, stdout io.Writer) error {
	c := p.c
	// A bad overrides file stops the start; later, a bad edit keeps the
	// last good one (logged and counted).
	if err := c.overrides.Load(); err != nil {
		return fmt.Errorf("load -runtime-config.file: %w", err)
	}
	p.runtime = goTask("runtime config", p.died, c.overrides.Run)
	if c.authn != nil {
		p.authn = goTask("tenants file", p.died, c.authn.Run)
	}
	p.gossip = goTask("memberlist", p.died, c.kv.Run)
	if err := p.waitFor(ctx, "gossip to start", func() bool { return c.kv.Addr() != "" }); err != nil {
		return err
	}
	p.server = goTask("server", p.died, func(ctx context.Context) error { return p.srv.Serve(ctx, httpL, grpcL) })

	if c.runsIngester() {
		p.srv.AddReadyCheck("ingester", c.ing.CheckReady)
		p.srv.AddReadyCheck("ingester ring", func(context.Context) error {
			if !p.ingActive.Load() {
				return errors.New("ingester not ACTIVE in the ring")
			}
			return nil
		})
		p.ingester = goTask("ingester", p.died, c.ing.Run)
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := c.ingLC.Register(rctx)
		cancel()
		if err != nil {
			return err
		}
		p.ingRegistered = true
		p.ingLC = goTask("ingester lifecycler", p.died, c.ingLC.Run)
		// JOINING until the WAL is replayed, then ACTIVE.
		p.activate = goTask("ingester activation", p.died, func(ctx context.Context) error {
			if err := waitReady(ctx, c.ing.CheckReady); err != nil {
				<-ctx.Done()
				return nil // shutting down before it was ready
			}
			if err := c.ingLC.SetState(ctx, ring.Active); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			p.ingActive.Store(true)
			<-ctx.Done()
			return nil
		})
	}
	if c.runsDistributor() {
		p.srv.AddReadyCheck("distributor ring", func(context.Context) error {
			if !p.distActive.Load() {
				return errors.New("distributor not ACTIVE in the distributor ring")
			}
			return nil
		})
		p.distributor = goTask("distributor", p.died, c.dist.Run)
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := c.distLC.Register(rctx)
		if err == nil {
			err = c.distLC.SetState(rctx, ring.Active)
		}
		cancel()
		if err != nil {
			return err
		}
		p.distActive.Store(true)
		p.distLC = goTask("distributor lifecycler", p.died, c.distLC.Run)
	}
	if c.runsQuerier() {
		p.querier = goTask("querier", p.died, c.q.Run)
	}
	if err := p.startBlocks(ctx); err != nil {
		return err
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

// startBlocks starts the long-term storage side: the bucket index loader,
// the store-gateway (JOINING until its first sync of owned blocks, then
// ACTIVE) and the compactor (ACTIVE at once: it owns tenants, not data).
func (p *process) startBlocks(ctx context.Context) error {
	b := p.c.blocks
	if b.indexes != nil {
		p.bucketIndex = goTask("bucket index loader", p.died, b.indexes.Run)
	}
	if b.sg != nil {
		p.srv.AddReadyCheck("store-gateway", b.sg.CheckReady)
		p.storeGateway = goTask("store-gateway", p.died, b.sg.Run)
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := b.sgLC.Register(rctx)
		cancel()
		if err != nil {
			return err
		}
		p.sgLC = goTask("store-gateway lifecycler", p.died, b.sgLC.Run)
		p.sgActivate = goTask("store-gateway activation", p.died, func(ctx context.Context) error {
			if err := waitReady(ctx, b.sg.CheckReady); err != nil {
				<-ctx.Done()
				return nil
			}
			if err := b.sgLC.SetState(ctx, ring.Active); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			<-ctx.Done()
			return nil
		})
	}
	if b.comp != nil {
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := b.compLC.Register(rctx)
		if err == nil {
			err = b.compLC.SetState(rctx, ring.Active)
		}
		cancel()
		if err != nil {
			return err
		}
		p.compLC = goTask("compactor lifecycler", p.died, b.compLC.Run)
		p.compactor = goTask("compactor", p.died, b.comp.Run)
	}
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
	if p.c.runsDistributor() {
		fmt.Fprintf(w, "  Prometheus:  remote_write: [{url: %s/api/v1/push}]\n", base)
	}
	if p.c.runsQuerier() {
		fmt.Fprintf(w, "  Grafana:     Prometheus data source, URL %s\n", base)
	}
	fmt.Fprintf(w, "  Status:      %s/ready  %s/metrics  %s/ring  %s/memberlist\n", base, base, base, base)
	fmt.Fprintf(w, "  HTTP:        %s\n", base)
	fmt.Fprintf(w, "  Gossip:      %s (other processes join with -memberlist.join=%s)\n", p.c.kv.Addr(), p.c.kv.Addr())
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
