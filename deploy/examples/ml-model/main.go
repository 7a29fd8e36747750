package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "ml-model:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	listenAddress string
	drift         string // parsed by parseDrift
	seed          uint64
	trainSamples  int
	load          loadConfig
	logLevel      string
}

func (c *config) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.listenAddress, "listen-address", "127.0.0.1:8080", "Where to serve HTTP (/predict, /feedback, /drift, /webhook, /metrics); :8080 for every interface (in a container).")
	fs.StringVar(&c.drift, "drift", "0", "Drift level at start, 0 to 1: 0 is the model as trained, 1 a coin flip with slow inferences. Change it at run time with POST /drift?level=.")
	fs.Uint64Var(&c.seed, "seed", 1, "Seed of the training data, the simulated inference times and failures, and the load loop.")
	fs.IntVar(&c.trainSamples, "train.samples", 2000, "Examples generated to train on (as many again are held out to measure accuracy).")
	fs.Float64Var(&c.load.rate, "load.rate", 20, fmt.Sprintf("Prediction requests a second the built-in load loop sends to this service, each followed by its label's feedback; 0 turns it off, at most %d.", maxLoadRate))
	fs.IntVar(&c.load.concurrency, "load.concurrency", 64, "Requests of the load loop in flight at most; a tick that finds them all busy is skipped.")
	fs.StringVar(&c.logLevel, "log.level", "info", "debug, info, warn or error.")
}

func (c *config) validate() error {
	if _, err := parseDrift(c.drift); err != nil {
		return fmt.Errorf("-drift: %w", err)
	}
	if c.trainSamples < 10 || c.trainSamples > 1_000_000 {
		return fmt.Errorf("-train.samples=%d: want 10 to 1000000", c.trainSamples)
	}
	if c.load.rate < 0 || c.load.rate > maxLoadRate {
		return fmt.Errorf("-load.rate=%g: want 0 to %d", c.load.rate, maxLoadRate)
	}
	if c.load.concurrency < 1 || c.load.concurrency > 10000 {
		return fmt.Errorf("-load.concurrency=%d: want 1 to 10000", c.load.concurrency)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log.level: %w", err)
	}
	return nil
}

// run trains the model, then serves until ctx is done.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("ml-model", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.logLevel)) // validated
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	drift, _ := parseDrift(cfg.drift) // validated

	m, heldOut := trainModel(cfg.seed, cfg.trainSamples)
	log.Info("model trained", "samples", cfg.trainSamples, "w1", m.w[0], "w2", m.w[1], "b", m.b, "held_out_accuracy", heldOut)
	svc := newService(m, serviceConfig{drift: drift, seed: cfg.seed, heldOut: heldOut}, log)

	l, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return fmt.Errorf("listen on -listen-address: %w", err)
	}
	srv := &http.Server{Handler: svc.handler(), ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + l.Addr().String()
	log.Info("serving", "url", url, "metrics", url+"/metrics", "drift", url+"/drift", "load_rate", cfg.load.rate)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	g.Go(func() error { return runLoad(ctx, cfg.load, loopbackURL(l.Addr()), cfg.seed, log) })
	return g.Wait()
}

// trainModel trains on samples generated examples and returns the model and
// its accuracy on as many held-out ones.
func trainModel(seed uint64, samples int) (model, float64) {
	rng := rand.New(rand.NewPCG(seed, 0))
	trainSet := generate(rng, samples)
	heldOut := generate(rng, samples)
	m := train(trainSet, 300, 0.5)
	return m, m.accuracy(heldOut, 0)
}

// loopbackURL is the URL the load loop reaches the listener at: a listener
// on every interface is reached on loopback.
func loopbackURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	return "http://" + a.String()
}
