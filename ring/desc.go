package ring

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// State is an instance's place in its lifecycle.
type State int32

const (
	// Joining: registered, not yet taking writes (WAL replay, token claim).
	Joining State = iota + 1
	// Active: takes writes and serves reads.
	Active
	// Leaving: shutting down; serves reads, takes no new writes.
	Leaving
	// Left: gone; kept as a tombstone so gossip does not resurrect it.
	Left
)

func (s State) String() string {
	switch s {
	case Joining:
		return "JOINING"
	case Active:
		return "ACTIVE"
	case Leaving:
		return "LEAVING"
	case Left:
		return "LEFT"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// MarshalText makes states readable in the ring's JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *State) UnmarshalText(b []byte) error {
	for _, c := range []State{Joining, Active, Leaving, Left} {
		if string(b) == c.String() {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("unknown ring state %q", b)
}

// Instance is one member of the ring.
type Instance struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"` // gRPC host:port
	Zone  string `json:"zone,omitempty"`
	State State  `json:"state"`
	// Tokens are sorted ascending and unique within the ring.
	Tokens []uint32 `json:"tokens"`
	// Heartbeat is the last time the instance said it is alive, Unix ms.
	Heartbeat int64 `json:"heartbeat_ms"`
	// RegisteredAt is when the instance first joined, Unix ms.
	RegisteredAt int64 `json:"registered_at_ms"`
}

// Healthy reports whether op may use the instance at now.
func (in *Instance) Healthy(op Operation, heartbeatTimeout time.Duration, now time.Time) bool {
	return in.healthyAt(op, heartbeatCutoff(heartbeatTimeout, now))
}

// heartbeatCutoff is the oldest healthy heartbeat in Unix ms; computed once
// per lookup rather than once per instance visited.
func heartbeatCutoff(heartbeatTimeout time.Duration, now time.Time) int64 {
	if heartbeatTimeout <= 0 {
		return math.MinInt64
	}
	return now.Add(-heartbeatTimeout).UnixMilli()
}

func (in *Instance) healthyAt(op Operation, cutoff int64) bool {
	return op.accepts(in.State) && in.Heartbeat >= cutoff
}

// Desc is the whole ring state: every instance by id.
type Desc struct {
	Instances map[string]Instance `json:"instances"`
}

// NewDesc returns an empty ring.
func NewDesc() *Desc { return &Desc{Instances: map[string]Instance{}} }

// Clone returns a deep copy, so that readers never see a writer's changes.
func (d *Desc) Clone() *Desc {
	c := &Desc{Instances: make(map[string]Instance, len(d.Instances))}
	for id, in := range d.Instances {
		in.Tokens = slices.Clone(in.Tokens)
		c.Instances[id] = in
	}
	return c
}

// Operation says what a replication set is for; it decides which states count.
type Operation int

const (
	// Write: only ACTIVE instances take writes.
	Write Operation = iota
	// Read: ACTIVE and LEAVING instances hold data; JOINING ones may too
	// (a restarted ingester replaying its WAL), so reads ask them as well.
	Read
)

func (op Operation) accepts(s State) bool {
	switch op {
	case Write:
		return s == Active
	case Read:
		return s == Active || s == Leaving || s == Joining
	}
	return false
}
