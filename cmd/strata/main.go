package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
	"github.com/strata-metrics/strata/tenant"
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
		advertise = advertiseAddr(grpcL.Addr())
	}

	// Every component of -target=all. The distributor reaches the ingester
	// through the ring and real gRPC over loopback, exactly as in a cluster.
	store := ring.NewMemStore()
	rng := ring.New(cfg.Ring, store, time.Now)
	pool := clientpool.New(cfg.IngesterClient, reg)
	defer pool.Close()
	overrides := limits.NewOverrides(cfg.Limits)
	tenants := tenant.Resolver{MultitenancyEnabled: cfg.Auth.MultitenancyEnabled}

	ing, err := ingester.New(cfg.Ingester, cfg.DataDir, overrides, log.With("component", "ingester"), reg)
	if err != nil {
		return fmt.Errorf("create ingester: %w", err)
	}
	ingesterpb.RegisterIngesterServer(srv.GRPC(), ing)
	lc := ring.NewLifecycler(cfg.Lifecycler, cfg.Instance.ID, advertise, cfg.Instance.Zone, store, log.With("component", "ring"), reg)

	dist, err := distributor.New(cfg.Distributor, distributor.Deps{
		Ring: rng, Clients: pool, Limits: overrides, Tenants: tenants,
		Log: log.With("component", "distributor"), Reg: reg, Now: time.Now,
	})
	if err != nil {
		return fmt.Errorf("create distributor: %w", err)
	}
	srv.Handle("/api/v1/push", "api_v1_push", dist.PushHandler())
	srv.Handle("/api/v1/write", "api_v1_push", dist.PushHandler())

	q, err := querier.New(cfg.Querier, querier.Deps{
		Ring: rng, Clients: pool, Limits: overrides, Tenants: tenants,
		Log: log.With("component", "querier"), Reg: reg,
		Build: querier.BuildInfo{Version: version, Revision: revision, Branch: branch, BuildDate: buildDate},
	})
	if err != nil {
		return fmt.Errorf("create querier: %w", err)
	}
	q.RegisterRoutes(srv)
	srv.Handle("/ring", "ring", rng.StatusHandler())

	var active atomic.Bool
	srv.AddReadyCheck("ingester", ing.CheckReady)
	srv.AddReadyCheck("ring", func(context.Context) error {
		if !active.Load() {
			return errors.New("instance not ACTIVE in the ring yet")
		}
		return nil
	})

	// Shutdown order: the server stops taking requests and drains them, then
	// the ingester closes its TSDBs, then the instance leaves the ring.
	ingCtx, stopIngester := context.WithCancel(context.Background())
	defer stopIngester()
	ringCtx, stopRing := context.WithCancel(context.Background())
	defer stopRing()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := srv.Serve(gctx, httpL, grpcL)
		stopIngester()
		return err
	})
	g.Go(func() error {
		err := ing.Run(ingCtx)
		stopRing()
		if err != nil {
			return fmt.Errorf("ingester: %w", err)
		}
		if gctx.Err() == nil {
			return errors.New("ingester stopped unexpectedly")
		}
		return nil
	})
	g.Go(func() error { return dist.Run(gctx) })
	g.Go(func() error { return q.Run(gctx) })
	g.Go(func() error {
		if err := lc.Register(ringCtx); err != nil {
			return err
		}
		if err := waitReady(gctx, ing.CheckReady); err != nil {
			return nil // shutting down before we were ready
		}
		if err := lc.SetState(ringCtx, ring.Active); err != nil {
			return err
		}
		active.Store(true)
		httpAddr := httpL.Addr().(*net.TCPAddr)
		base := fmt.Sprintf("http://%s", hostPort(httpAddr))
		fmt.Fprintf(stdout, "Strata is ready (target=%s, data in %s).\n", cfg.Target, cfg.DataDir)
		fmt.Fprintf(stdout, "  Prometheus:  remote_write: [{url: %s/api/v1/push}]\n", base)
		fmt.Fprintf(stdout, "  Grafana:     Prometheus data source, URL %s\n", base)
		fmt.Fprintf(stdout, "  Status:      %s/ready  %s/metrics  %s/ring\n", base, base, base)
		return lc.Run(ringCtx)
	})
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
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

// advertiseAddr is the address other components dial: the listener's, with
// loopback for an unspecified host (one process reaches itself there).
func advertiseAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ta.IP == nil || ta.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
	}
	return ta.String()
}

// hostPort is what a person types in a browser for a listener.
func hostPort(a *net.TCPAddr) string {
	if a.IP == nil || a.IP.IsUnspecified() {
		return net.JoinHostPort("localhost", fmt.Sprint(a.Port))
	}
	return a.String()
}
