package ring

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// ErrTooFewHealthy means fewer healthy replicas exist than a quorum needs:
// the write or read cannot be served now (HTTP 503, the client retries).
var ErrTooFewHealthy = errors.New("too few healthy ingesters")

// ErrEmpty means no instance is in the ring yet.
var ErrEmpty = errors.New("the ring has no instances")

// Config is the read side of the ring, shared by distributors and queriers.
type Config struct {
	ReplicationFactor    int           `yaml:"replication_factor"`
	HeartbeatTimeout     time.Duration `yaml:"heartbeat_timeout"`
	ZoneAwarenessEnabled bool          `yaml:"zone_awareness_enabled"`
}

// RegisterFlags registers the ring's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.ReplicationFactor, "ring.replication-factor", 1, "Copies of each series, on distinct ingesters (distinct zones with zone awareness).")
	fs.DurationVar(&c.HeartbeatTimeout, "ring.heartbeat-timeout", time.Minute, "An instance whose last heartbeat is older than this is unhealthy and skipped; 0 never times out.")
	fs.BoolVar(&c.ZoneAwarenessEnabled, "ring.zone-awareness-enabled", false, "Place the replicas of a series in distinct zones (-instance.zone).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("-ring.replication-factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.HeartbeatTimeout < 0 {
		return fmt.Errorf("-ring.heartbeat-timeout must not be negative, got %s", c.HeartbeatTimeout)
	}
	return nil
}

// ReplicationSet is the instances an operation must reach, and how many of
// them may fail without failing the operation.
type ReplicationSet struct {
	Instances []Instance
	// MaxErrors is how many of Instances may fail; the operation succeeds
	// when len(Instances)-MaxErrors of them succeed.
	MaxErrors int
}

// Quorum is how many instances must succeed.
func (rs ReplicationSet) Quorum() int { return len(rs.Instances) - rs.MaxErrors }

// Ring answers replication questions over a Store's current state. It keeps
// a sorted token index, rebuilt only when the state changes.
type Ring struct {
	cfg   Config
	store Store
	now   func() time.Time

	mu        sync.RWMutex
	seen      *Desc
	tokens    []uint32 // sorted
	owners    []int32  // owners[i] indexes instances for tokens[i]
	instances []Instance
	zones     int
}

// New returns a Ring over store. now is the clock (time.Now in production).
func New(cfg Config, store Store, now func() time.Time) *Ring {
	return &Ring{cfg: cfg, store: store, now: now}
}

// ReplicationFactor is the configured number of copies.
func (r *Ring) ReplicationFactor() int { return r.cfg.ReplicationFactor }

// index returns the token index for the store's current state, rebuilding
// it when the state changed. The returned slices must not be modified.
func (r *Ring) index() (tokens []uint32, owners []int32, instances []Instance, zones int) {
	d := r.store.Get()
	r.mu.RLock()
	if d == r.seen {
		tokens, owners, instances, zones = r.tokens, r.owners, r.instances, r.zones
		r.mu.RUnlock()
		return
	}
	r.mu.RUnlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	if d != r.seen {
		r.rebuild(d)
	}
	return r.tokens, r.owners, r.instances, r.zones
}

func (r *Ring) rebuild(d *Desc) {
	ids := make([]string, 0, len(d.Instances))
	for id, in := range d.Instances {
		if in.State != Left {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	instances := make([]Instance, len(ids))
	zoneSet := map[string]struct{}{}
	n := 0
	for i, id := range ids {
		instances[i] = d.Instances[id]
		zoneSet[instances[i].Zone] = struct{}{}
		n += len(instances[i].Tokens)
	}
	type entry struct {
		token uint32
		owner int32
	}
	entries := make([]entry, 0, n)
	for i := range instances {
		for _, t := range instances[i].Tokens {
			entries = append(entries, entry{t, int32(i)})
		}
	}
	sort.Slice(entries, func(a, b int) bool { return entries[a].token < entries[b].token })
	r.tokens = make([]uint32, len(entries))
	r.owners = make([]int32, len(entries))
	for i, e := range entries {
		r.tokens[i], r.owners[i] = e.token, e.owner
	}
	r.instances, r.zones, r.seen = instances, len(zoneSet), d
}

// Get returns the replicas of the series hashed to token for op: the first
// ReplicationFactor distinct instances clockwise from token (in distinct
// zones with zone awareness), minus the unhealthy ones, with MaxErrors set
// so that success means a quorum (RF/2+1) of the replicas. buf is reused for
// the result's Instances when it has capacity.
func (r *Ring) Get(token uint32, op Operation, buf []Instance) (ReplicationSet, error) {
	tokens, owners, instances, zones := r.index()
	if len(tokens) == 0 {
		return ReplicationSet{}, ErrEmpty
	}
	rf := r.cfg.ReplicationFactor
	if rf > len(instances) {
		rf = len(instances)
	}
	if r.cfg.ZoneAwarenessEnabled && rf > zones {
		rf = zones
	}
	cutoff := heartbeatCutoff(r.cfg.HeartbeatTimeout, r.now())
	picked := buf[:0]
	var pickedIdx [16]int32
	idx := pickedIdx[:0]
	var zonesUsed [16]string
	zs := zonesUsed[:0]
	healthy := 0
	want := rf
	start := sort.Search(len(tokens), func(i int) bool { return tokens[i] >= token })
	for i := 0; i < len(tokens) && len(idx) < want; i++ {
		o := owners[(start+i)%len(tokens)]
		if slices.Contains(idx, o) {
			continue
		}
		in := &instances[o]
		if r.cfg.ZoneAwarenessEnabled && slices.Contains(zs, in.Zone) {
			continue
		}
		idx = append(idx, o)
		zs = append(zs, in.Zone)
		// A write to a series whose replica is joining or leaving goes one
		// instance further, so the series keeps RF writable copies.
		if op == Write && (in.State == Joining || in.State == Leaving) && want < len(instances) {
			want++
		}
		if in.healthyAt(op, cutoff) {
			picked = append(picked, *in)
			healthy++
		}
	}
	quorum := rf/2 + 1
	if healthy < quorum {
		return ReplicationSet{}, fmt.Errorf("%w: %d of %d replicas healthy, quorum needs %d", ErrTooFewHealthy, healthy, rf, quorum)
	}
	return ReplicationSet{Instances: picked, MaxErrors: healthy - quorum}, nil
}

// GetAllHealthy returns every instance healthy for op, with MaxErrors set to
// how many more may fail while every series still has one replica answering
// among them: RF-1 minus the unhealthy ones (without zones), or all of one
// failed zone at most RF-1 zones (with zones). Reads merge what answers.
func (r *Ring) GetAllHealthy(op Operation) (ReplicationSet, error) {
	_, _, instances, _ := r.index()
	if len(instances) == 0 {
		return ReplicationSet{}, ErrEmpty
	}
	cutoff := heartbeatCutoff(r.cfg.HeartbeatTimeout, r.now())
	var out []Instance
	unhealthy := 0
	for i := range instances {
		if instances[i].healthyAt(op, cutoff) {
			out = append(out, instances[i])
		} else {
			unhealthy++
		}
	}
	rf := min(r.cfg.ReplicationFactor, len(instances))
	// Reads need every series to have at least a quorum... of one: a read
	// merges all replicas, so any one of the RF copies answers for a series.
	// Tolerating RF/2 failures keeps reads consistent with quorum writes.
	maxErrors := rf/2 - unhealthy
	if maxErrors < 0 {
		return ReplicationSet{}, fmt.Errorf("%w: %d of %d instances unhealthy, replication factor %d tolerates %d", ErrTooFewHealthy, unhealthy, len(instances), rf, rf/2)
	}
	return ReplicationSet{Instances: out, MaxErrors: maxErrors}, nil
}

// Instances returns a snapshot of every instance, sorted by id.
func (r *Ring) Instances() []Instance {
	_, _, instances, _ := r.index()
	return slices.Clone(instances)
}

// Ownership returns the share of the token space each instance owns.
func (r *Ring) Ownership() map[string]float64 {
	tokens, owners, instances, _ := r.index()
	out := make(map[string]float64, len(instances))
	if len(tokens) == 0 {
		return out
	}
	for i := range tokens {
		// Token i owns the range (tokens[i-1], tokens[i]].
		var span uint64
		if i == 0 {
			span = uint64(tokens[0]) + (1<<32 - uint64(tokens[len(tokens)-1]))
		} else {
			span = uint64(tokens[i] - tokens[i-1])
		}
		out[instances[owners[i]].ID] += float64(span) / float64(1<<32)
	}
	return out
}
