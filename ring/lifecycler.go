package ring

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// LifecyclerConfig is one instance's membership: who it is and how often it
// says it is alive. ID, Addr and Zone come from the process flags
// (-instance.id, -instance.zone and the gRPC address), not from here.
type LifecyclerConfig struct {
	NumTokens            int           `yaml:"num_tokens"`
	HeartbeatPeriod      time.Duration `yaml:"heartbeat_period"`
	UnregisterOnShutdown bool          `yaml:"unregister_on_shutdown"`
	JoinObservePeriod    time.Duration `yaml:"join_observe_period"`
}

// RegisterFlags registers the lifecycler's flags.
func (c *LifecyclerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.NumTokens, "ingester.num-tokens", 128, "Tokens an ingester takes in the ring; more tokens spread series more evenly.")
	fs.DurationVar(&c.HeartbeatPeriod, "ingester.heartbeat-period", 5*time.Second, "How often an ingester (and a distributor, in the distributor ring) refreshes its heartbeat in the ring; keep it well below -ring.heartbeat-timeout.")
	fs.DurationVar(&c.JoinObservePeriod, "ingester.join-observe-period", 3*time.Second, "How long an ingester (or store-gateway) that took new tokens, i.e. started without a tokens file, stays JOINING watching the ring before it turns ACTIVE, re-placing its tokens around instances that joined at the same moment; 0 turns ACTIVE at once. Keep it above the time a ring change takes to reach every member.")
	fs.BoolVar(&c.UnregisterOnShutdown, "ingester.unregister-on-shutdown", true, "On shutdown, leave the ring (LEFT); false keeps the ingester's tokens in the ring as LEAVING until it restarts with the same -instance.id and tokens file (a StatefulSet restart: its series do not move meanwhile).")
}

// Validate checks the configuration.
func (c *LifecyclerConfig) Validate() error {
	if c.NumTokens < 1 {
		return fmt.Errorf("-ingester.num-tokens must be at least 1, got %d", c.NumTokens)
	}
	if c.HeartbeatPeriod <= 0 {
		return fmt.Errorf("-ingester.heartbeat-period must be positive, got %s", c.HeartbeatPeriod)
	}
	if c.JoinObservePeriod < 0 {
		return fmt.Errorf("-ingester.join-observe-period must not be negative, got %s", c.JoinObservePeriod)
	}
	return nil
}

// LifecyclerDeps is what a Lifecycler needs besides its configuration.
type LifecyclerDeps struct {
	ID, Addr, Zone string
	Store          Store
	// TokensFile keeps the tokens across restarts (<-data.dir>/tokens for
	// an ingester); "" keeps none (a distributor).
	TokensFile string
	Log        *slog.Logger
	Reg        prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// Lifecycler announces one instance in the ring and keeps its heartbeat.
// It is the only writer of its instance's entry: every heartbeat writes the
// whole entry it keeps, so an entry lost to gossip (forgotten by mistake,
// or replaced by a stale one after a restart) comes back within a period.
type Lifecycler struct {
	cfg            LifecyclerConfig
	id, addr, zone string
	tokensFile     string
	store          Store
	log            *slog.Logger
	now            func() time.Time

	heartbeats       prometheus.Counter
	heartbeatFailure prometheus.Counter
	tokenConflicts   prometheus.Counter
	tokensReplaced   prometheus.Counter

	mu   sync.Mutex
	rnd  *rand.Rand
	self Instance // this instance as it says it is; ID is "" before Register
	// placedOn is, while this instance's new tokens may still move (it
	// took them in Register and is JOINING), the tokens of the instances
	// it placed them around (joinView); nil once they are settled.
	placedOn map[string][]uint32
	// settled are the instances ACTIVE or LEAVING when this one took new
	// tokens: it always places its tokens around them.
	settled    map[string]bool
	registered time.Time // when Register ran, on the real clock
	// saveMu serialises tokensMoved's read of the tokens and its save.
	saveMu sync.Mutex
	// moved counts settles that moved the tokens since tokensMoved last
	// saved them: a store may run an update function more than once.
	moved int
}

// NewLifecycler returns a Lifecycler for the instance deps.ID.
func NewLifecycler(cfg LifecyclerConfig, deps LifecyclerDeps) *Lifecycler {
	f := promauto.With(deps.Reg)
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return &Lifecycler{
		cfg: cfg, id: deps.ID, addr: deps.Addr, zone: deps.Zone, tokensFile: deps.TokensFile,
		store: deps.Store, log: deps.Log, now: now,
		rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		heartbeats: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_heartbeats_total", Help: "Heartbeats this instance wrote to the ring.",
		}),
		heartbeatFailure: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_heartbeat_failures_total", Help: "Heartbeats this instance failed to write to the ring.",
		}),
		tokenConflicts: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_token_conflicts_total", Help: "Tokens this instance gave up because an instance with a lower id claimed them too.",
		}),
		tokensReplaced: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_ring_tokens_replaced_total", Help: "Times this instance, JOINING with new tokens, placed them again around instances that joined at the same moment.",
		}),
	}
}

// Register adds the instance to the ring as JOINING with the tokens of its
// tokens file (a restart), else those it still has in the ring, else new
// ones; and saves them to the tokens file. New tokens are placed around
// joinView and may move until the instance leaves JOINING (settle).
func (l *Lifecycler) Register(ctx context.Context) error {
	saved := l.loadTokens()
	err := l.store.Update(ctx, func(d *Desc) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.registered = time.Now() // the observe period runs on the real clock
		now := l.now().UnixMilli()
		in, ok := d.Instances[l.id]
		inRing := ok && in.State != Left && len(in.Tokens) > 0
		if !ok || in.State == Left || in.RegisteredAt == 0 {
			in.RegisteredAt = now
		}
		in.ID, in.Addr, in.Zone, in.State, in.Heartbeat = l.id, l.addr, l.zone, Joining, now
		l.placedOn = nil
		switch {
		case len(saved) > 0:
			in.Tokens = saved
		case inRing:
		default:
			l.settled = map[string]bool{}
			for id, other := range d.Instances {
				if other.State == Active || other.State == Leaving {
					l.settled[id] = true
				}
			}
			view := d.joinView(in, l.settled)
			in.Tokens = view.newTokens(l.id, l.cfg.NumTokens, l.rnd)
			l.placedOn = view.tokensByID()
		}
		d.Instances[l.id] = in
		l.self = in
		return true
	})
	if err != nil {
		return fmt.Errorf("register %s in the ring: %w", l.id, err)
	}
	l.mu.Lock()
	tokens := l.self.Tokens
	l.mu.Unlock()
	l.saveTokens(tokens)
	return nil
}

// SetState moves the instance to state. Moving from JOINING to ACTIVE with
// new tokens (it started without a tokens file: an ingester's or
// store-gateway's first start), it first waits until
// -ingester.join-observe-period has passed since Register, placing its
// tokens again whenever the instances they were placed around change
// (settle); the move itself settles them a last time. Tokens never move
// after that. An instance without a tokens file (distributor, compactor)
// owns nothing that outlives it and does not wait.
func (l *Lifecycler) SetState(ctx context.Context, state State) error {
	l.mu.Lock()
	registered := l.self.ID != ""
	observe := l.placedOn != nil && l.tokensFile != "" && state == Active
	until := l.registered.Add(l.cfg.JoinObservePeriod)
	l.mu.Unlock()
	if !registered {
		return fmt.Errorf("set ring state of %s to %s: not registered", l.id, state)
	}
	if observe {
		if err := l.observe(ctx, until); err != nil {
			return fmt.Errorf("set ring state of %s to %s: %w", l.id, state, err)
		}
	}
	err := l.store.Update(ctx, func(d *Desc) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.settle(d)
		l.self.State, l.self.Heartbeat = state, l.now().UnixMilli()
		if state != Joining {
			l.placedOn = nil
		}
		d.Instances[l.id] = l.self
		return true
	})
	if err != nil {
		return fmt.Errorf("set ring state of %s to %s: %w", l.id, state, err)
	}
	l.tokensMoved()
	l.log.Info("ring state changed", "instance", l.id, "state", state)
	return nil
}

// observePoll is how often a joining instance looks at the ring while it
// observes; a look that finds the same state costs a pointer comparison.
const observePoll = 20 * time.Millisecond

// observe watches the ring until until, settling this instance's tokens
// whenever the ring changes.
func (l *Lifecycler) observe(ctx context.Context, until time.Time) error {
	t := time.NewTicker(observePoll)
	defer t.Stop()
	var seen *Desc
	for time.Now().Before(until) {
		if d := l.store.Get(); d != seen {
			seen = d
			err := l.store.Update(ctx, func(d *Desc) bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.settle(d)
				// Also when an earlier run of this function settled
				// but its write was dropped for a concurrent change.
				if slices.Equal(d.Instances[l.id].Tokens, l.self.Tokens) {
					return false
				}
				d.Instances[l.id] = l.self
				return true
			})
			if err != nil {
				return fmt.Errorf("settle new tokens: %w", err)
			}
			l.tokensMoved()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// settle places this instance's new tokens (l.self) again when the
// instances they were placed around (joinView of d) changed since; the
// caller writes l.self into d. Tokens from a tokens file or the ring, and
// tokens of an instance no longer JOINING, never move. l.mu is held.
func (l *Lifecycler) settle(d *Desc) {
	if l.placedOn == nil || l.self.State != Joining {
		return
	}
	view := d.joinView(l.self, l.settled)
	now := view.tokensByID()
	if maps.EqualFunc(now, l.placedOn, slices.Equal) {
		return
	}
	l.self.Tokens = view.newTokens(l.id, len(l.self.Tokens), l.rnd)
	l.placedOn = now
	l.moved++
}

// tokensMoved counts and logs the settles that moved the tokens, and saves
// them to the tokens file, after the ring took them.
func (l *Lifecycler) tokensMoved() {
	// saveMu keeps saves in the order the tokens were read: the observe
	// loop and the heartbeat both call this, and a stale save landing last
	// would leave the file behind the ring.
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	moved, tokens := l.moved, l.self.Tokens
	l.moved = 0
	l.mu.Unlock()
	if moved == 0 {
		return
	}
	l.tokensReplaced.Add(float64(moved))
	l.log.Info("placed new tokens again around instances that joined at the same moment", "instance", l.id, "times", moved)
	l.saveTokens(tokens)
}

// Run heartbeats until ctx is done, then leaves the ring: it marks the
// instance LEFT (a tombstone, so gossip does not bring it back), or with
// -ingester.unregister-on-shutdown=false leaves its entry as it is (tokens
// kept; it turns unhealthy when its heartbeat ages). Returns nil.
func (l *Lifecycler) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.HeartbeatPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if !l.cfg.UnregisterOnShutdown {
				l.log.Info("keeping this instance's tokens in the ring for its restart", "instance", l.id)
				return nil
			}
			leaveCtx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
			defer cancel()
			if err := l.SetState(leaveCtx, Left); err != nil {
				l.log.Warn("leave ring", "err", err)
			}
			return nil
		case <-t.C:
			l.heartbeat(ctx)
		}
	}
}

// leaveTimeout bounds the last ring write on shutdown.
const leaveTimeout = 5 * time.Second

// heartbeat writes the instance's whole entry with a new heartbeat, settles
// new tokens while JOINING, and gives up tokens that an instance with a
// lower id claims too.
func (l *Lifecycler) heartbeat(ctx context.Context) {
	var lost int
	err := l.store.Update(ctx, func(d *Desc) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.self.ID == "" {
			return false
		}
		l.self.Heartbeat = l.now().UnixMilli()
		l.settle(d)
		d.Instances[l.id] = l.self
		if lost = d.resolveTokenConflicts(l.id, l.rnd); lost > 0 {
			l.self.Tokens = d.Instances[l.id].Tokens
		}
		return true
	})
	if err != nil {
		l.heartbeatFailure.Inc()
		l.log.Warn("ring heartbeat", "instance", l.id, "err", err)
		return
	}
	l.heartbeats.Inc()
	l.tokensMoved()
	if lost > 0 {
		l.tokenConflicts.Add(float64(lost))
		l.log.Warn("gave up tokens another instance claims too", "instance", l.id, "tokens", lost)
		l.mu.Lock()
		tokens := l.self.Tokens
		l.mu.Unlock()
		l.saveTokens(tokens)
	}
}

// loadTokens returns the tokens file's tokens, nil when there is none (a
// first start) or it cannot be read (logged: the instance takes new ones).
func (l *Lifecycler) loadTokens() []uint32 {
	if l.tokensFile == "" {
		return nil
	}
	tokens, err := LoadTokensFile(l.tokensFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		l.log.Warn("tokens file unreadable, taking new tokens", "err", err)
		return nil
	}
	if len(tokens) != l.cfg.NumTokens {
		l.log.Warn("tokens file holds another number of tokens than -ingester.num-tokens; keeping the file's", "file", len(tokens), "flag", l.cfg.NumTokens)
	}
	return slices.Clip(tokens)
}

// saveTokens writes tokens to the tokens file; a failure is logged, since
// the ring still has them.
func (l *Lifecycler) saveTokens(tokens []uint32) {
	if l.tokensFile == "" {
		return
	}
	if err := SaveTokensFile(l.tokensFile, tokens); err != nil {
		l.log.Warn("save tokens file", "err", err)
	}
}
