package distributor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/processor"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// ReplicaPicker finds the ingesters of a series; *ring.Ring is one.
//
// Get is called once per series and must be goroutine-safe. It returns the
// healthy replicas of token for op (writing them into buf when it has the
// capacity: the caller reuses buf) and how many of them may fail, or an
// error wrapping ring.ErrTooFewHealthy or ring.ErrEmpty when a quorum
// cannot be placed.
type ReplicaPicker interface {
	Get(token uint32, op ring.Operation, buf []ring.Instance) (ring.ReplicationSet, error)
}

// IngesterClients hands out the gRPC client of an ingester address;
// *clientpool.Pool is one. Get must be goroutine-safe and must not block on
// the network (dialing is lazy); the client is used concurrently.
type IngesterClients interface {
	Get(addr string) (ingesterpb.IngesterClient, error)
}

// Deps are what a Distributor works with.
type Deps struct {
	Ring    ReplicaPicker
	Clients IngesterClients
	Limits  *limits.Overrides
	Tenants tenant.Resolver
	Log     *slog.Logger
	Reg     prometheus.Registerer
	Now     func() time.Time // the clock of sample age checks; time.Now when nil
	// HealthyDistributors counts the healthy distributors of the ring, for
	// the "global" ingestion rate strategy; nil means 1.
	HealthyDistributors func() int
	// HAKV holds the HA-pair election shared by all distributors (the
	// gossip KV, with RegisterHATrackerKey called before its Run); nil
	// turns HA-pair dedup off for every tenant, whatever its limits say.
	HAKV HAKV
	// TenantLabels caps the tenant label of the distributor's metrics
	// (-metrics.max-tenant-labels), shared by every component of the
	// process; nil labels every tenant with its id.
	TenantLabels *tenant.LabelCap
}

// Distributor serves the push API. It is goroutine-safe.
type Distributor struct {
	cfg           Config
	ring          ReplicaPicker
	clients       IngesterClients
	limits        *limits.Overrides
	tenants       tenant.Resolver
	log           *slog.Logger
	now           func() time.Time
	m             *metrics
	tenantLabels  *tenant.LabelCap // nil: every tenant labelled with its id
	maxCompressed int              // snappy.MaxEncodedLen(cfg.MaxRecvMsgSize)
	inflightBytes atomic.Int64     // push bytes held, against cfg.MaxInflightPushBytes
	rate          *rateLimiter     // ingestion rate, samples per tenant
	reqRate       *rateLimiter     // request rate, pushes per tenant
	ha            *haTracker       // nil: no HA-pair dedup

	bodies sync.Pool // *pushBody: an HTTP push's body buffers and decoded request
	states sync.Pool // *pushState: validation, sharding and quorum scratch
	bufs   sync.Pool // *[]byte: one per-ingester push body each

	// Ingester pushes in flight, including those that go on after their
	// request was answered (quorum reached early): Run waits for them on
	// shutdown. (A WaitGroup would forbid a push starting while Run waits,
	// which a draining HTTP server may well do.)
	// OTLP delta-to-cumulative processors, by tenant (push_otlp_delta.go).
	deltaMu     sync.Mutex
	delta       map[string]processor.Metrics
	deltaClosed bool

	mu      sync.Mutex
	pushing int
	drained chan struct{} // closed when pushing drops to 0, while Run waits
}

// New returns a Distributor. It does no I/O.
func New(cfg Config, deps Deps) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Ring == nil:
		return nil, errors.New("distributor: Deps.Ring is nil")
	case deps.Clients == nil:
		return nil, errors.New("distributor: Deps.Clients is nil")
	case deps.Limits == nil:
		return nil, errors.New("distributor: Deps.Limits is nil")
	case deps.Log == nil:
		return nil, errors.New("distributor: Deps.Log is nil")
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	reg := deps.Reg
	if reg == nil {
		return nil, fmt.Errorf("distributor: Deps.Reg is nil (use prometheus.NewRegistry() in tests)")
	}
	d := &Distributor{
		cfg:           cfg,
		ring:          deps.Ring,
		clients:       deps.Clients,
		limits:        deps.Limits,
		tenants:       deps.Tenants,
		log:           deps.Log,
		now:           now,
		m:             newMetrics(reg, deps.TenantLabels),
		tenantLabels:  deps.TenantLabels,
		maxCompressed: snappy.MaxEncodedLen(cfg.MaxRecvMsgSize),
		rate:          newRateLimiter(deps.HealthyDistributors),
		reqRate:       newRateLimiter(deps.HealthyDistributors),
	}
	if deps.HAKV != nil {
		d.ha = newHATracker(deps.HAKV, deps.Log, reg, deps.TenantLabels)
	}
	d.states.New = func() any { return newPushState() }
	return d, nil
}

// Run waits until ctx is done, then for the ingester pushes still in
// flight (each ends within -distributor.remote-timeout), and returns nil.
// Stop the HTTP server before ctx ends so that no new push starts.
func (d *Distributor) Run(ctx context.Context) error {
	<-ctx.Done()
	d.stopDelta()
	d.mu.Lock()
	if d.pushing == 0 {
		d.mu.Unlock()
		return nil
	}
	drained := make(chan struct{})
	d.drained = drained
	d.mu.Unlock()
	<-drained
	return nil
}

func (d *Distributor) sendStarted() {
	d.mu.Lock()
	d.pushing++
	d.mu.Unlock()
}

func (d *Distributor) sendDone() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pushing--; d.pushing == 0 && d.drained != nil {
		close(d.drained)
		d.drained = nil
	}
}

// getBuf returns an empty per-ingester buffer.
func (d *Distributor) getBuf() *[]byte {
	if b, ok := d.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

// putBuf recycles b unless it grew beyond what a typical push needs, so one
// huge request does not pin its buffers.
func (d *Distributor) putBuf(b *[]byte) {
	if cap(*b) > maxPooledBytes {
		return
	}
	*b = (*b)[:0]
	d.bufs.Put(b)
}

// maxPooledBytes is the largest buffer kept for reuse: 16 typical
// 2,000-series pushes.
const maxPooledBytes = 8 << 20
