package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// KV is the gossiped key-value store of one process: several keys, each
// holding one Mergeable value type. Goroutine-safe.
type KV struct {
	cfg  Config
	name string
	log  *slog.Logger
	m    *metrics
	now  func() time.Time

	// Set before Run by tests only.
	lookupIP    func(ctx context.Context, host string) ([]net.IP, error)
	tweakConfig func(*memberlist.Config)
	keysReload  time.Duration // 0: encryptionReload

	// joinTried is closed once Run has first tried the seeds (JoinTried).
	joinTried chan struct{}

	queue     *memberlist.TransmitLimitedQueue
	reliable  chan []byte // changes too large for UDP, for sendLoop
	maxPacket int         // largest message that fits one UDP gossip packet
	members   memberTable // live members, from memberlist's events

	// keys is replaced, never modified, so Get reads it without a lock:
	// Get sits on the push path, once per series.
	keys atomic.Pointer[map[string]*keyState]

	mu      sync.Mutex // serialises changes to values, and RegisterKey
	started bool
}

type keyState struct {
	codec   Codec
	value   atomic.Pointer[box] // nil until first set; stored under KV.mu
	version uint64              // bumped on every change; under KV.mu
	changed chan struct{}       // closed and replaced on every change; under KV.mu
}

// box holds an immutable value, so that it can sit in an atomic.Pointer.
type box struct{ v Mergeable }

func (ks *keyState) get() Mergeable {
	if b := ks.value.Load(); b != nil {
		return b.v
	}
	return nil
}

// key returns the state of a registered key, nil for an unknown one.
func (kv *KV) key(name string) *keyState {
	if m := kv.keys.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// keySnapshot is one key's value at one moment.
type keySnapshot struct {
	key   string
	codec Codec
	value Mergeable
}

// snapshot returns every key's current value (nil when none), by key.
func (kv *KV) snapshot() []keySnapshot {
	var out []keySnapshot
	if m := kv.keys.Load(); m != nil {
		for name, ks := range *m {
			out = append(out, keySnapshot{name, ks.codec, ks.get()})
		}
	}
	slices.SortFunc(out, func(a, b keySnapshot) int { return strings.Compare(a.key, b.key) })
	return out
}

const (
	// udpBufferSize is memberlist's packet size (its LAN default): one
	// Ethernet frame without fragmentation.
	udpBufferSize = 1400
	// maxQueuedBroadcasts bounds the broadcast queue; the oldest and most
	// transmitted changes go first, push/pull repairs what they carried.
	maxQueuedBroadcasts = 1024
	// maxCASAttempts bounds how often CAS calls f again after a concurrent
	// change.
	maxCASAttempts = 10
	// leaveTimeout bounds the wait for the leave message to go out.
	leaveTimeout = 5 * time.Second
	// fanout is how many members get a change sent over TCP (too large for
	// UDP) and the final state on shutdown, and how many seeds a rejoin
	// tries at a time.
	fanout = 3
)

// New returns a KV for this process; nodeName names it in the cluster unless
// -memberlist.node-name does. It does no I/O: Run creates the memberlist.
// Register every key with RegisterKey before Run.
func New(cfg Config, nodeName string, log *slog.Logger, reg prometheus.Registerer) (*KV, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NodeName != "" {
		nodeName = cfg.NodeName
	}
	if nodeName == "" {
		return nil, errors.New("gossip node name is empty: set -memberlist.node-name or -instance.id")
	}
	kv := &KV{
		cfg: cfg, name: nodeName, log: log, now: time.Now,
		lookupIP: func(ctx context.Context, host string) ([]net.IP, error) {
			return net.DefaultResolver.LookupIP(ctx, "ip", host)
		},
		reliable:  make(chan []byte, 64),
		joinTried: make(chan struct{}),
	}
	// What memberlist leaves for user messages in one packet: its compound
	// header, the label header, and the per-message framing.
	labelOverhead := 0
	if cfg.ClusterLabel != "" {
		labelOverhead = 2 + len(cfg.ClusterLabel)
	}
	kv.maxPacket = udpBufferSize - 2 - labelOverhead - 3 - 16 // 16: slack for memberlist's own framing changes
	if cfg.EncryptionKeysFile != "" {
		kv.maxPacket -= encryptionOverhead
	}
	kv.queue = &memberlist.TransmitLimitedQueue{NumNodes: kv.numMembers, RetransmitMult: memberlist.DefaultLANConfig().RetransmitMult}
	kv.m = newMetrics(reg,
		func() float64 { return float64(kv.numMembers()) },
		func() float64 { return float64(kv.queue.NumQueued()) })
	return kv, nil
}

// RegisterKey declares key and the codec of its values. Every process of the
// cluster registers the same keys with the same codecs, before Run; a
// message for an unknown key is dropped.
func (kv *KV) RegisterKey(key string, c Codec) error {
	if key == "" || len(key) > 255 {
		return fmt.Errorf("register gossip key %q: must be 1 to 255 bytes", key)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if kv.started {
		return fmt.Errorf("register gossip key %q: Run has started", key)
	}
	if kv.key(key) != nil {
		return fmt.Errorf("register gossip key %q: already registered", key)
	}
	m := map[string]*keyState{}
	if old := kv.keys.Load(); old != nil {
		maps.Copy(m, *old)
	}
	m[key] = &keyState{codec: c, changed: make(chan struct{})}
	kv.keys.Store(&m)
	return nil
}

// Get returns key's current value, nil when it has none (or key is not
// registered). The caller must not modify it. Get takes no lock.
func (kv *KV) Get(key string) Mergeable {
	if ks := kv.key(key); ks != nil {
		return ks.get()
	}
	return nil
}

var errConcurrentChange = errors.New("value changed concurrently")

// CAS changes key's value: it calls f with the current value (nil when none;
// f must not modify it) and merges the next value f returns, broadcasting
// only what changed. When f returns a nil next and no error, nothing
// changes. When the value changed while f ran, or f returned an error with
// retry set, CAS calls f again with the new value (at most 10 times; so f
// may run more than once); with retry unset it merges next anyway (the
// merge is still correct, only not conditional) or returns f's error. next
// belongs to the KV afterwards. CAS works before and after Run; changes made
// before Run reach the cluster when this member joins.
func (kv *KV) CAS(ctx context.Context, key string, f func(current Mergeable) (next Mergeable, retry bool, err error)) error {
	ks := kv.key(key)
	if ks == nil {
		return fmt.Errorf("cas gossip key %q: not registered", key)
	}
	var lastErr error
	for range maxCASAttempts {
		if err := ctx.Err(); err != nil {
			kv.m.cas.WithLabelValues(key, "error").Inc()
			return fmt.Errorf("cas gossip key %q: %w", key, err)
		}
		kv.mu.Lock()
		cur, version := ks.get(), ks.version
		kv.mu.Unlock()

		next, retry, err := f(cur)
		if err != nil {
			if retry {
				lastErr = err
				continue
			}
			kv.m.cas.WithLabelValues(key, "error").Inc()
			return fmt.Errorf("cas gossip key %q: %w", key, err)
		}
		if next == nil {
			kv.m.cas.WithLabelValues(key, "unchanged").Inc()
			return nil
		}

		kv.mu.Lock()
		if ks.version != version && retry {
			kv.mu.Unlock()
			lastErr = errConcurrentChange
			continue
		}
		delta, err := kv.mergeLocked(key, ks, next)
		kv.mu.Unlock()
		if err != nil {
			kv.m.cas.WithLabelValues(key, "error").Inc()
			return fmt.Errorf("cas gossip key %q: %w", key, err)
		}
		if delta == nil {
			kv.m.cas.WithLabelValues(key, "unchanged").Inc()
			return nil
		}
		kv.m.cas.WithLabelValues(key, "changed").Inc()
		kv.broadcast(key, ks, delta, true)
		return nil
	}
	kv.m.cas.WithLabelValues(key, "error").Inc()
	return fmt.Errorf("cas gossip key %q: gave up after %d attempts: %w", key, maxCASAttempts, lastErr)
}

// WatchKey calls fn with key's current value (nil when none) and again after
// every change, until ctx is done or fn returns false. It blocks; fn runs on
// the caller's goroutine, must not modify the value, and sees only the
// latest value when changes come faster than it returns.
func (kv *KV) WatchKey(ctx context.Context, key string, fn func(Mergeable) bool) {
	ks := kv.key(key)
	if ks == nil {
		return
	}
	for {
		kv.mu.Lock()
		v, changed := ks.get(), ks.changed
		kv.mu.Unlock()
		if !fn(v) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// mergeLocked merges incoming into key's value and publishes the result;
// it returns the delta to broadcast, nil when nothing changed.
func (kv *KV) mergeLocked(key string, ks *keyState, incoming Mergeable) (Mergeable, error) {
	cur := ks.get()
	if cur == nil {
		kv.publishLocked(ks, incoming)
		kv.m.merges.WithLabelValues(key, "true").Inc()
		return incoming, nil
	}
	merged, delta, err := cur.Merge(incoming)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	if delta == nil {
		kv.m.merges.WithLabelValues(key, "false").Inc()
		return nil, nil
	}
	kv.publishLocked(ks, merged)
	kv.m.merges.WithLabelValues(key, "true").Inc()
	return delta, nil
}

func (kv *KV) publishLocked(ks *keyState, v Mergeable) {
	ks.value.Store(&box{v})
	ks.version++
	close(ks.changed)
	ks.changed = make(chan struct{})
}

// mergeRemote decodes a value a peer sent and merges it. Changes that were
// news are passed on: by UDP gossip when they fit a packet, else over TCP
// unless they came from a push/pull (which the next push/pulls repair).
func (kv *KV) mergeRemote(key, codecID string, raw []byte, kind string) {
	ks := kv.key(key)
	if ks == nil {
		kv.m.dropped.WithLabelValues(dropUnknownKey).Inc()
		return
	}
	if codecID != ks.codec.ID() {
		kv.m.dropped.WithLabelValues(dropCodec).Inc()
		kv.log.Debug("gossip value with another codec dropped", "key", key, "codec", codecID, "want", ks.codec.ID())
		return
	}
	v, err := ks.codec.Decode(raw)
	if err != nil {
		kv.m.dropped.WithLabelValues(dropMalformed).Inc()
		kv.log.Debug("malformed gossip value dropped", "key", key, "err", err)
		return
	}
	v, _ = v.Compact(kv.before())
	kv.mu.Lock()
	delta, err := kv.mergeLocked(key, ks, v)
	kv.mu.Unlock()
	if err != nil {
		kv.m.dropped.WithLabelValues(dropMergeError).Inc()
		kv.log.Warn("gossip value not merged", "key", key, "err", err)
		return
	}
	if delta != nil {
		kv.broadcast(key, ks, delta, kind != kindPushPull)
	}
}

// broadcast queues delta for UDP gossip, or for a TCP send to a few members
// when it is larger than a packet and large is allowed.
func (kv *KV) broadcast(key string, ks *keyState, delta Mergeable, large bool) {
	raw, err := ks.codec.Encode(delta)
	if err != nil {
		kv.m.dropped.WithLabelValues(dropEncodeFailed).Inc()
		kv.log.Warn("gossip change not encoded", "key", key, "err", err)
		return
	}
	msg := encodeMessage(key, ks.codec.ID(), raw)
	if len(msg) <= kv.maxPacket {
		kv.queue.QueueBroadcast(&broadcast{key: key, delta: delta, msg: msg})
		kv.queue.Prune(maxQueuedBroadcasts)
		return
	}
	if !large {
		kv.m.dropped.WithLabelValues(dropRelayTooBig).Inc()
		return
	}
	select {
	case kv.reliable <- msg:
	default:
		kv.m.dropped.WithLabelValues(dropSendQueue).Inc()
	}
}

// before is the write time older than which entries are dropped.
func (kv *KV) before() time.Time { return kv.now().Add(-kv.cfg.LeftTombstoneTTL) }

// compact drops expired entries from every key.
func (kv *KV) compact() {
	before := kv.before()
	kv.mu.Lock()
	defer kv.mu.Unlock()
	for _, s := range kv.snapshot() { // under kv.mu: the values stay current
		if s.value == nil {
			continue
		}
		if c, n := s.value.Compact(before); n > 0 {
			kv.publishLocked(kv.key(s.key), c)
			kv.m.compactedEntries.WithLabelValues(s.key).Add(float64(n))
		}
	}
}

func (kv *KV) numMembers() int { return kv.members.size() }

// Addr is the host:port other members reach this one at, "" before Run.
func (kv *KV) Addr() string {
	if n, ok := kv.members.get(kv.name); ok {
		return n.Address()
	}
	return ""
}

// broadcast is one queued change.
type broadcast struct {
	key   string
	delta Mergeable
	msg   []byte
}

// Invalidates drops an older queued change of the same key that this one
// supersedes.
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	if !ok || o.key != b.key {
		return false
	}
	s, ok := b.delta.(Superseder)
	return ok && s.Supersedes(o.delta)
}

func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
