package ring

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync/atomic"
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
	fs.IntVar(&c.ReplicationFactor, "ring.replication-factor", 3, "Copies of each series, on distinct ingesters (distinct zones with zone awareness); a write needs RF/2+1 of them. With -target=all and this flag not given (nor ring.replication_factor in -config.file) it is 1.")
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
	// MaxUnavailableZones is set on a read set with zone awareness: the
	// read also succeeds when every failed instance sits in at most this
	// many zones (each series has one replica per zone), however many
	// instances that is. 0 adds nothing to MaxErrors.
	MaxUnavailableZones int
}

// Quorum is how many instances must succeed.
func (rs ReplicationSet) Quorum() int { return len(rs.Instances) - rs.MaxErrors }

// Tolerates reports whether the operation still succeeds when the instances
// with these zones (one entry per failed instance) failed.
func (rs ReplicationSet) Tolerates(failedZones []string) bool {
	if len(failedZones) <= rs.MaxErrors {
		return true
	}
	if rs.MaxUnavailableZones <= 0 {
		return false
	}
	var distinct []string
	for _, z := range failedZones {
		if !slices.Contains(distinct, z) {
			if distinct = append(distinct, z); len(distinct) > rs.MaxUnavailableZones {
				return false
			}
		}
	}
	return true
}

// Ring answers replication questions over a Store's current state. It keeps
// the state's Index, rebuilt only when the state changes, outside any lock:
// lookups never wait for a rebuild.
type Ring struct {
	cfg   Config
	store Store
	now   func() time.Time
	idx   atomic.Pointer[Index]
}

// New returns a Ring over store. now is the clock (time.Now in production).
func New(cfg Config, store Store, now func() time.Time) *Ring {
	r := &Ring{cfg: cfg, store: store, now: now}
	r.idx.Store(emptyIndex)
	return r
}

// ReplicationFactor is the configured number of copies.
func (r *Ring) ReplicationFactor() int { return r.cfg.ReplicationFactor }

// Index returns the token index of the store's current state, rebuilding
// it when the state changed. Two callers may rebuild at once; the later
// publication wins and a stale one is rebuilt on the next call, since
// pointer inequality with the store's state is all that triggers it.
func (r *Ring) Index() *Index {
	d := r.store.Get()
	cur := r.idx.Load()
	if d == cur.seen {
		return cur
	}
	next := buildIndex(d, cur)
	r.idx.Store(next)
	return next
}

// Get returns the replicas of the series hashed to token for op: the first
// ReplicationFactor distinct instances clockwise from token (in distinct
// zones with zone awareness), minus the unhealthy ones, with MaxErrors set
// so that success means a quorum (RF/2+1) of the replicas. A write to a
// series whose replica is joining or leaving goes one instance further, so
// the series keeps RF writable copies. buf is reused for the result's
// Instances when it has capacity.
func (r *Ring) Get(token uint32, op Operation, buf []Instance) (ReplicationSet, error) {
	ix := r.Index()
	if len(ix.tokens) == 0 {
		return ReplicationSet{}, ErrEmpty
	}
	zoneAware := r.cfg.ZoneAwarenessEnabled
	rf := min(r.cfg.ReplicationFactor, ix.maxOwners(zoneAware))
	rule := placement
	if op == Write {
		rule = writeSet
	}
	cutoff := heartbeatCutoff(r.cfg.HeartbeatTimeout, r.now())
	var pos [16]int32
	picked := buf[:0]
	for _, o := range ix.walk(token, rf, zoneAware, rule, op, cutoff, pos[:0]) {
		if in := &ix.instances[o]; in.healthyAt(op, cutoff) {
			picked = append(picked, *in)
		}
	}
	healthy := len(picked)
	quorum := rf/2 + 1
	if healthy < quorum {
		return ReplicationSet{}, fmt.Errorf("%w: %d of %d replicas healthy, quorum needs %d", ErrTooFewHealthy, healthy, rf, quorum)
	}
	return ReplicationSet{Instances: picked, MaxErrors: healthy - quorum}, nil
}

// GetAllHealthy returns every instance healthy for op, with MaxErrors set to
// how many more may fail while every series still has a replica answering
// that holds each write a quorum acknowledged: RF/2 minus the unhealthy
// ones. With zone awareness a zone with an unhealthy instance is left out
// whole and MaxUnavailableZones says how many more zones may fail (RF/2
// minus those left out): one failed zone of three at RF 3.
func (r *Ring) GetAllHealthy(op Operation) (ReplicationSet, error) {
	ix := r.Index()
	instances := ix.instances
	if len(instances) == 0 {
		return ReplicationSet{}, ErrEmpty
	}
	cutoff := heartbeatCutoff(r.cfg.HeartbeatTimeout, r.now())
	rf := min(r.cfg.ReplicationFactor, len(instances))
	if r.cfg.ZoneAwarenessEnabled {
		return allHealthyByZone(instances, op, cutoff, min(rf, ix.zones), r.cfg.ReplicationFactor)
	}
	var out []Instance
	unhealthy := 0
	for i := range instances {
		if instances[i].healthyAt(op, cutoff) {
			out = append(out, instances[i])
		} else {
			unhealthy++
		}
	}
	// A read merges all replicas, so any one of a series' copies answers
	// for it; tolerating RF/2 failures keeps reads consistent with quorum
	// writes (RF/2+1 copies acknowledged).
	maxErrors := rf/2 - unhealthy
	if maxErrors < 0 {
		return ReplicationSet{}, fmt.Errorf("%w: %d of %d instances unhealthy, replication factor %d tolerates %d", ErrTooFewHealthy, unhealthy, len(instances), rf, rf/2)
	}
	// Fewer instances than the replication factor: older writes may have
	// had replicas on instances that have left the ring since, and those
	// count as failed already.
	maxErrors = max(0, maxErrors-(r.cfg.ReplicationFactor-rf))
	return ReplicationSet{Instances: out, MaxErrors: maxErrors}, nil
}

// allHealthyByZone is GetAllHealthy with zone awareness: each series has
// one replica in each of rf zones, so losing rf/2 zones whole is as safe as
// losing rf/2 instances.
//
// With fewer zones than the configured replication factor (a zone's
// instances left the ring), older writes may have had a replica there: each
// missing zone counts as failed already, so no more may fail.
func allHealthyByZone(instances []Instance, op Operation, cutoff int64, rf, configuredRF int) (ReplicationSet, error) {
	var badZones []string
	for i := range instances {
		if !instances[i].healthyAt(op, cutoff) && !slices.Contains(badZones, instances[i].Zone) {
			badZones = append(badZones, instances[i].Zone)
		}
	}
	maxZones := rf/2 - len(badZones)
	if maxZones < 0 {
		slices.Sort(badZones)
		return ReplicationSet{}, fmt.Errorf("%w: zones %q have unhealthy instances, replication factor %d across zones tolerates %d", ErrTooFewHealthy, badZones, rf, rf/2)
	}
	maxZones = max(0, maxZones-(configuredRF-rf))
	var out []Instance
	for i := range instances {
		if !slices.Contains(badZones, instances[i].Zone) {
			out = append(out, instances[i])
		}
	}
	return ReplicationSet{Instances: out, MaxErrors: maxZones, MaxUnavailableZones: maxZones}, nil
}

// CountHealthy returns how many instances are healthy for op: for the
// distributor ring, how many distributors share a global limit.
func (r *Ring) CountHealthy(op Operation) int {
	instances := r.Index().instances
	cutoff := heartbeatCutoff(r.cfg.HeartbeatTimeout, r.now())
	n := 0
	for i := range instances {
		if instances[i].healthyAt(op, cutoff) {
			n++
		}
	}
	return n
}

// Instances returns a snapshot of every instance, sorted by id.
func (r *Ring) Instances() []Instance {
	return slices.Clone(r.Index().instances)
}

// Ownership returns the share of the token space each instance owns.
func (r *Ring) Ownership() map[string]float64 {
	ix := r.Index()
	tokens, owners, instances := ix.tokens, ix.owners, ix.instances
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
