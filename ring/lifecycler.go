package ring

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// LifecyclerConfig is one instance's membership: who it is and how often it
// says it is alive. ID, Addr and Zone come from the process flags
// (-instance.id, -instance.zone and the gRPC address), not from here.
type LifecyclerConfig struct {
	NumTokens       int           `yaml:"num_tokens"`
	HeartbeatPeriod time.Duration `yaml:"heartbeat_period"`
}

// RegisterFlags registers the lifecycler's flags.
func (c *LifecyclerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.NumTokens, "ingester.num-tokens", 128, "Tokens an ingester takes in the ring; more tokens spread series more evenly.")
	fs.DurationVar(&c.HeartbeatPeriod, "ingester.heartbeat-period", 5*time.Second, "How often an ingester refreshes its heartbeat in the ring.")
}

// Validate checks the configuration.
func (c *LifecyclerConfig) Validate() error {
	if c.NumTokens < 1 {
		return fmt.Errorf("-ingester.num-tokens must be at least 1, got %d", c.NumTokens)
	}
	if c.HeartbeatPeriod <= 0 {
		return fmt.Errorf("-ingester.heartbeat-period must be positive, got %s", c.HeartbeatPeriod)
	}
	return nil
}

// Lifecycler announces one instance in the ring and keeps its heartbeat.
type Lifecycler struct {
	cfg              LifecyclerConfig
	id, addr, zone   string
	store            Store
	log              *slog.Logger
	now              func() time.Time
	heartbeats       prometheus.Counter
	heartbeatFailure prometheus.Counter
}

// NewLifecycler returns a Lifecycler for the instance id at addr in zone.
func NewLifecycler(cfg LifecyclerConfig, id, addr, zone string, store Store, log *slog.Logger, reg prometheus.Registerer) *Lifecycler {
	f := promauto.With(reg)
	return &Lifecycler{
		cfg: cfg, id: id, addr: addr, zone: zone, store: store, log: log, now: time.Now,
		heartbeats: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_heartbeats_total", Help: "Heartbeats this instance wrote to the ring.",
		}),
		heartbeatFailure: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_heartbeat_failures_total", Help: "Heartbeats this instance failed to write to the ring.",
		}),
	}
}

// Register adds the instance to the ring as JOINING, keeping the tokens it
// already has there (a restart) or taking new ones.
func (l *Lifecycler) Register(ctx context.Context) error {
	return l.store.Update(ctx, func(d *Desc) bool {
		now := l.now().UnixMilli()
		in, ok := d.Instances[l.id]
		if !ok || in.State == Left {
			rnd := rand.New(rand.NewPCG(rand.Uint64(), uint64(now)))
			in = Instance{ID: l.id, RegisteredAt: now, Tokens: d.newTokens(l.id, l.cfg.NumTokens, rnd)}
		}
		in.Addr, in.Zone, in.State, in.Heartbeat = l.addr, l.zone, Joining, now
		d.Instances[l.id] = in
		return true
	})
}

// SetState moves the instance to state.
func (l *Lifecycler) SetState(ctx context.Context, state State) error {
	var missing bool
	err := l.store.Update(ctx, func(d *Desc) bool {
		in, ok := d.Instances[l.id]
		if !ok {
			missing = true
			return false
		}
		in.State, in.Heartbeat = state, l.now().UnixMilli()
		d.Instances[l.id] = in
		return true
	})
	if err != nil {
		return fmt.Errorf("set ring state of %s to %s: %w", l.id, state, err)
	}
	if missing {
		return fmt.Errorf("set ring state of %s to %s: not registered", l.id, state)
	}
	l.log.Info("ring state changed", "instance", l.id, "state", state)
	return nil
}

// Run heartbeats until ctx is done, then marks the instance LEFT (a
// tombstone, so gossip does not bring it back) and returns nil.
func (l *Lifecycler) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.HeartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := l.SetState(context.Background(), Left); err != nil {
				l.log.Warn("leave ring", "err", err)
			}
			return nil
		case <-t.C:
			l.heartbeat(ctx)
		}
	}
}

func (l *Lifecycler) heartbeat(ctx context.Context) {
	err := l.store.Update(ctx, func(d *Desc) bool {
		in, ok := d.Instances[l.id]
		if !ok {
			return false
		}
		in.Heartbeat = l.now().UnixMilli()
		d.Instances[l.id] = in
		return true
	})
	if err != nil {
		l.heartbeatFailure.Inc()
		l.log.Warn("ring heartbeat", "instance", l.id, "err", err)
		return
	}
	l.heartbeats.Inc()
}
