package alertmanager

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/alertmanagerpb"
	"github.com/strata-metrics/strata/ring"
)

// statePrefix holds one object per tenant: its silences and notification
// log, an alertmanagerpb.FullState, written by the tenant's first owner.
// NEVER CHANGE IT: persisted silences would be lost.
const statePrefix = "~alertmanager/state/"

// maxStateBytes bounds a tenant's state read from the bucket.
const maxStateBytes = 256 << 20

// maxSendsInFlight bounds the replication sends in flight of a replica;
// beyond it a change is not sent (counted as a failure) and reaches the
// other owners through their next full read only.
const maxSendsInFlight = 512

// peerDialer dials the other replicas of the module.
type peerDialer interface {
	// Conn returns a connection to the replica at the gRPC address addr.
	Conn(addr string) (grpc.ClientConnInterface, error)
}

// replication is what the replicas' state exchange keeps.
type replication struct {
	mu sync.Mutex
	// merging are the payloads being merged (by their first byte's
	// address): upstream's Merge broadcasts what it merged, as gossip
	// would; every owner hears every change from its author, so that
	// echo is not sent.
	merging map[*byte]int
	slots   chan struct{}
}

func (r *replication) init() {
	r.merging = map[*byte]int{}
	r.slots = make(chan struct{}, maxSendsInFlight)
}

func (r *replication) begin(b []byte) {
	if len(b) == 0 {
		return
	}
	r.mu.Lock()
	r.merging[&b[0]]++
	r.mu.Unlock()
}

func (r *replication) end(b []byte) {
	if len(b) == 0 {
		return
	}
	r.mu.Lock()
	if r.merging[&b[0]]--; r.merging[&b[0]] <= 0 {
		delete(r.merging, &b[0])
	}
	r.mu.Unlock()
}

func (r *replication) isMerging(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.merging[&b[0]] > 0
}

func (m *MultitenantAlertmanager) client(addr string) (alertmanagerpb.AlertmanagerClient, error) {
	conn, err := m.deps.Peers.Conn(addr)
	if err != nil {
		return nil, fmt.Errorf("dial alertmanager %s: %w", addr, err)
	}
	return alertmanagerpb.NewAlertmanagerClient(conn), nil
}

// broadcast sends a change of tenant id's silences or notification log
// to the tenant's other healthy owners, without waiting.
func (m *MultitenantAlertmanager) broadcast(id string, kind alertmanagerpb.StateKind, b []byte) {
	if m.repl.isMerging(b) {
		return
	}
	owners, sharded := m.owners(id)
	if !sharded {
		return
	}
	changed := time.Now()
	for _, o := range owners {
		if o.ID == m.deps.InstanceID {
			continue
		}
		select {
		case m.repl.slots <- struct{}{}:
		default:
			m.metrics.replicationFailure(id, kind)
			continue
		}
		go func() {
			defer func() { <-m.repl.slots }()
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.PeerTimeout)
			defer cancel()
			m.metrics.replicationSent(kind)
			c, err := m.client(o.Addr)
			if err == nil {
				_, err = c.UpdateState(ctx, &alertmanagerpb.StatePart{Tenant: id, Kind: kind, Data: b})
			}
			if err != nil {
				m.metrics.replicationFailure(id, kind)
				m.log.Debug("replicating alertmanager state", "tenant", id, "to", o.ID, "err", err)
				return
			}
			m.metrics.replicated(kind, changed) // UpdateState answers once merged
		}()
	}
}

// merge merges a payload of kind into in, without sending it on.
func (m *MultitenantAlertmanager) merge(in *instance, kind alertmanagerpb.StateKind, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	m.repl.begin(b)
	defer m.repl.end(b)
	var err error
	switch kind {
	case alertmanagerpb.StateKind_STATE_KIND_SILENCES:
		err = in.silences.Merge(b)
	case alertmanagerpb.StateKind_STATE_KIND_NFLOG:
		err = in.nflog.Merge(b)
	default:
		return fmt.Errorf("unknown alertmanager state kind %d", kind)
	}
	if err != nil {
		m.metrics.mergeFailures.WithLabelValues(kindName(kind)).Inc()
		return fmt.Errorf("merge %s of tenant %q: %w", kindName(kind), in.tenant, err)
	}
	m.metrics.merges.WithLabelValues(kindName(kind)).Inc()
	return nil
}

func (m *MultitenantAlertmanager) mergeFull(in *instance, st *alertmanagerpb.FullState) error {
	if err := m.merge(in, alertmanagerpb.StateKind_STATE_KIND_SILENCES, st.GetSilences()); err != nil {
		return err
	}
	return m.merge(in, alertmanagerpb.StateKind_STATE_KIND_NFLOG, st.GetNflog())
}

func kindName(k alertmanagerpb.StateKind) string {
	switch k {
	case alertmanagerpb.StateKind_STATE_KIND_SILENCES:
		return "silences"
	case alertmanagerpb.StateKind_STATE_KIND_NFLOG:
		return "nflog"
	}
	return "unknown"
}

// syncState fills a new instance of tenant id with the state of another
// replica that runs the tenant (its other owners first, then any healthy
// replica: the one the ring moved it away from may still run it), else
// with the state in the bucket.
func (m *MultitenantAlertmanager) syncState(ctx context.Context, id string, in *instance) {
	for _, o := range m.stateSources(id) {
		in.markPulled(o.ID)
		st, err := m.readPeerState(ctx, id, o.Addr)
		if err != nil {
			m.log.Debug("reading a tenant's alertmanager state from another owner", "tenant", id, "from", o.ID, "err", err)
			continue
		}
		if err := m.mergeFull(in, st); err != nil {
			m.log.Warn("merging a tenant's alertmanager state from another owner", "tenant", id, "from", o.ID, "err", err)
			continue
		}
		m.metrics.stateSyncs.WithLabelValues("peer").Inc()
		return
	}
	st, err := m.readStoredState(ctx, id)
	if err != nil {
		m.metrics.stateSyncs.WithLabelValues("failed").Inc()
		m.log.Warn("reading a tenant's alertmanager state from the bucket", "tenant", id, "err", err)
		return
	}
	if st == nil {
		m.metrics.stateSyncs.WithLabelValues("none").Inc()
		return
	}
	if err := m.mergeFull(in, st); err != nil {
		m.metrics.stateSyncs.WithLabelValues("failed").Inc()
		m.log.Warn("merging a tenant's alertmanager state from the bucket", "tenant", id, "err", err)
		return
	}
	m.metrics.stateSyncs.WithLabelValues("bucket").Inc()
}

// settleAfter is how long a new instance of tenant id waits before its
// first notification: the other owners' changes sent before they saw
// this replica in the ring did not reach it, and a replica that has just
// started may not see the others yet, so it reads their state again then
// (upstream waits for its gossip to settle). Without a ring, or in a
// process that joins no cluster (-target=all alone), none.
func (m *MultitenantAlertmanager) settleAfter() time.Duration {
	if m.deps.Ring == nil || m.deps.Seedless {
		return 0
	}
	return m.cfg.PeerTimeout
}

// settle reads the whole state of tenant id from every other owner into
// in, once the owners have seen this replica in the ring.
func (m *MultitenantAlertmanager) settle(id string, in *instance) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // a stop does not wait for slow peers
		select {
		case <-in.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	owners, _ := m.owners(id)
	for _, o := range owners {
		if o.ID != m.deps.InstanceID {
			m.pull(ctx, id, in, o)
		}
	}
}

// pull merges the whole state of tenant id at owner o into in, and
// remembers that it did (whether o answered or not: its later changes
// come as broadcasts).
func (m *MultitenantAlertmanager) pull(ctx context.Context, id string, in *instance, o ring.Instance) {
	in.markPulled(o.ID)
	st, err := m.readPeerState(ctx, id, o.Addr)
	if err != nil {
		m.log.Debug("reading a tenant's alertmanager state from another owner", "tenant", id, "from", o.ID, "err", err)
		return
	}
	if err := m.mergeFull(in, st); err != nil {
		m.log.Warn("merging a tenant's alertmanager state from another owner", "tenant", id, "from", o.ID, "err", err)
		return
	}
	m.metrics.stateSyncs.WithLabelValues("resync").Inc()
}

// pullFromNewOwners reads the state of every owner of the tenants running
// here that was not an owner when this replica last looked: a replica
// that started before it saw the others (gossip not joined yet), or an
// owner that came back, would otherwise never get what was logged before.
func (m *MultitenantAlertmanager) pullFromNewOwners(ctx context.Context) {
	if m.deps.Ring == nil {
		return
	}
	m.mu.Lock()
	all := make(map[string]*instance, len(m.instances))
	for id, e := range m.instances {
		all[id] = e.instance
	}
	m.mu.Unlock()
	for id, in := range all {
		owners, _ := m.owners(id)
		var others []string
		for _, o := range owners {
			if o.ID == m.deps.InstanceID {
				continue
			}
			others = append(others, o.ID)
			if !in.pulledFrom(o.ID) {
				m.pull(ctx, id, in, o)
			}
		}
		in.keepPulled(others)
	}
}

// stateSources are the other replicas that may run tenant id: its other
// healthy owners first, then the other healthy replicas.
func (m *MultitenantAlertmanager) stateSources(id string) []ring.Instance {
	if m.deps.Ring == nil {
		return nil
	}
	snap := m.deps.Ring.Snapshot()
	owners := snap.HealthyOwners(tenantToken(id), ring.Write, nil)
	var out []ring.Instance
	for _, o := range owners {
		if o.ID != m.deps.InstanceID {
			out = append(out, o)
		}
	}
	for _, in := range m.deps.Ring.Instances() {
		if in.ID == m.deps.InstanceID || !snap.Healthy(&in, ring.Read) ||
			slices.ContainsFunc(owners, func(o ring.Instance) bool { return o.ID == in.ID }) {
			continue
		}
		out = append(out, in)
	}
	return out
}

func (m *MultitenantAlertmanager) readPeerState(ctx context.Context, id, addr string) (*alertmanagerpb.FullState, error) {
	c, err := m.client(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.PeerTimeout)
	defer cancel()
	return c.ReadState(ctx, &alertmanagerpb.ReadStateRequest{Tenant: id})
}

// readStoredState returns tenant id's state in the bucket; nil when none.
func (m *MultitenantAlertmanager) readStoredState(ctx context.Context, id string) (*alertmanagerpb.FullState, error) {
	r, err := m.deps.Bucket.Get(ctx, statePrefix+id)
	if err != nil {
		if m.deps.Bucket.IsObjNotFoundErr(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read alertmanager state of tenant %q: %w", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read alertmanager state of tenant %q: %w", id, err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("alertmanager state of tenant %q is over %d bytes", id, maxStateBytes)
	}
	st := &alertmanagerpb.FullState{}
	if err := proto.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("decode alertmanager state of tenant %q: %w", id, err)
	}
	return st, nil
}

// persist writes tenant id's state to the bucket.
func (m *MultitenantAlertmanager) persist(ctx context.Context, id string, in *instance) {
	err := func() error {
		st, err := in.state()
		if err != nil {
			return err
		}
		b, err := proto.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode alertmanager state of tenant %q: %w", id, err)
		}
		if err := m.deps.Bucket.Upload(ctx, statePrefix+id, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("write alertmanager state of tenant %q: %w", id, err)
		}
		return nil
	}()
	if err != nil {
		m.metrics.persistFailures.Inc()
		m.log.Warn("persisting a tenant's alertmanager state", "tenant", id, "err", err)
		return
	}
	m.metrics.persists.Inc()
}

// persistAll writes the state of every tenant this replica persists.
func (m *MultitenantAlertmanager) persistAll(ctx context.Context) {
	m.mu.Lock()
	all := make(map[string]*instance, len(m.instances))
	for id, e := range m.instances {
		all[id] = e.instance
	}
	m.mu.Unlock()
	for id, in := range all {
		if ctx.Err() != nil {
			return
		}
		if m.persists(id) {
			m.persist(ctx, id, in)
		}
	}
}

// running returns tenant id's instance when it runs here, without making
// one.
func (m *MultitenantAlertmanager) running(id string) *instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.instances[id]; e != nil {
		return e.instance
	}
	return nil
}

// UpdateState merges another owner's change of a tenant's state; a tenant
// that does not run here is skipped (it reads the whole state when it
// starts).
func (g grpcServer) UpdateState(_ context.Context, req *alertmanagerpb.StatePart) (*alertmanagerpb.UpdateStateResponse, error) {
	in := g.m.running(req.GetTenant())
	if in == nil {
		return &alertmanagerpb.UpdateStateResponse{}, nil
	}
	if err := g.m.merge(in, req.GetKind(), req.GetData()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &alertmanagerpb.UpdateStateResponse{}, nil
}

// ReadState returns a tenant's whole state, for an owner that starts it.
func (g grpcServer) ReadState(_ context.Context, req *alertmanagerpb.ReadStateRequest) (*alertmanagerpb.FullState, error) {
	in := g.m.running(req.GetTenant())
	if in == nil {
		return nil, status.Errorf(codes.NotFound, "the alertmanager of tenant %q does not run here", req.GetTenant())
	}
	st, err := in.state()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return st, nil
}
