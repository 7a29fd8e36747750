package storequery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/ring"
)

// Clients is what the client needs from a connection pool.
type Clients interface {
	// Get returns the client of the store-gateway at addr (host:port),
	// dialing on first use. It is goroutine-safe; the client is shared and
	// stays usable, so the caller must not close it.
	Get(addr string) (storepb.StoreGatewayClient, error)
}

// ConnFunc is Clients over a function that returns the connection to an
// address, such as a connection pool's.
type ConnFunc func(addr string) (grpc.ClientConnInterface, error)

// Get implements Clients.
func (f ConnFunc) Get(addr string) (storepb.StoreGatewayClient, error) {
	conn, err := f(addr)
	if err != nil {
		return nil, err
	}
	return storepb.NewStoreGatewayClient(conn), nil
}

// Deps is what a Client needs.
type Deps struct {
	Blocks  bucketindex.BlockLister
	Sharder *ring.BlockSharder
	Clients Clients
	// IngesterReplicationFactor is the ingesters' -ring.replication-factor:
	// with it a damaged ingester copy of a range whose other copies were
	// served is skipped (see coveredByCopies). 0 (unknown) and 1 never skip.
	IngesterReplicationFactor int
	Log                       *slog.Logger
	Reg                       prometheus.Registerer
}

// Client reads long-term blocks through the store-gateways. It is
// goroutine-safe.
type Client struct {
	blocks  bucketindex.BlockLister
	sharder *ring.BlockSharder
	clients Clients
	rf      int
	log     *slog.Logger
	m       *metrics
}

// New returns a Client.
func New(deps Deps) *Client {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{blocks: deps.Blocks, sharder: deps.Sharder, clients: deps.Clients, rf: deps.IngesterReplicationFactor, log: log, m: newMetrics(deps.Reg)}
}

// UnavailableError means that no store-gateway served some blocks: every
// healthy replica of each failed, or answered without it, or the block is
// damaged (BlockFailure.DataLoss) and its data is nowhere else in the
// query's blocks.
type UnavailableError struct {
	RPC    string
	Tenant string
	Blocks []BlockFailure
}

// BlockFailure is one block no store-gateway served, and why.
type BlockFailure struct {
	ID       ulid.ULID
	Attempts []Attempt
	// DataLoss: a store-gateway found the block's bytes damaged (gRPC
	// DataLoss); other replicas were not asked, they read the same objects.
	DataLoss bool
}

// DataLoss reports whether every block failed because it is damaged:
// retrying the query cannot help.
func (e *UnavailableError) DataLoss() bool {
	for _, f := range e.Blocks {
		if !f.DataLoss {
			return false
		}
	}
	return len(e.Blocks) > 0
}

// Attempt is one store-gateway's failure to serve a block.
type Attempt struct {
	Instance, Addr string
	Err            error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from store-gateways: %d block(s) of tenant %s not served", e.RPC, len(e.Blocks), e.Tenant)
	for _, f := range e.Blocks {
		if f.DataLoss {
			fmt.Fprintf(&b, "; block %s is damaged:", f.ID)
		} else {
			fmt.Fprintf(&b, "; block %s:", f.ID)
		}
		for i, a := range f.Attempts {
			if i > 0 {
				b.WriteString(",")
			}
			if a.Instance == "" {
				fmt.Fprintf(&b, " %v", a.Err)
			} else {
				fmt.Fprintf(&b, " %s (%s): %v", a.Instance, a.Addr, a.Err)
			}
		}
	}
	return b.String()
}

// errNotQueried is a store-gateway's answer that left a requested block out.
var errNotQueried = errors.New("answered without the block")

// errNoReplica says a block has no healthy replica left to try.
var errNoReplica = errors.New("no healthy store-gateway left to try")

// pendingBlock is one block being fetched: its healthy replicas in ring
// order (primary first, so each block's chunks are cached on one
// store-gateway while it is up), the next one to try, and what failed.
type pendingBlock struct {
	ref      bucketindex.BlockRef
	replicas []ring.Instance
	next     int
	attempts []Attempt
}

// Call sends one request for the blocks ids to one store-gateway and
// returns its answer, the blocks it queried and those that failed, each
// with its error. It is called from several goroutines at once, one per
// store-gateway of a round, and must not keep c.
type Call[A any] func(ctx context.Context, c storepb.StoreGatewayClient, ids []string) (A, []string, []*storepb.BlockError, error)

// Fetch asks the store-gateways owning the tenant's blocks that overlap
// [mint, maxt] for them, with f, and returns their answers, one per
// successful request, for the caller to merge: every block of the range
// served once, or an error (an *UnavailableError naming the blocks no
// store-gateway served; see fetch). No blocks: no answers.
func Fetch[A any](ctx context.Context, c *Client, rpc, tenantID string, mint, maxt int64, f Call[A]) ([]A, error) {
	blocks, err := c.blocksFor(ctx, tenantID, mint, maxt)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	return fetch(ctx, c, rpc, tenantID, blocks, f)
}

// fetch asks, for each block, one replica at a time, in rounds: every
// store-gateway of a round gets one request with all its blocks of the
// round, in parallel; blocks it failed or did not serve go to their next
// replica in the next round, except a block it found damaged (DataLoss),
// which every replica would read alike. Once every block is served or out
// of replicas, the failed blocks that other ingesters' copies cover are
// skipped (coveredByCopies); if any other is left it returns an
// UnavailableError naming them, else the successful answers.
func fetch[A any](ctx context.Context, c *Client, rpc, tenantID string, blocks []bucketindex.BlockRef, f Call[A]) ([]A, error) {
	snap := c.sharder.Snapshot()
	pending := make([]*pendingBlock, 0, len(blocks))
	for _, b := range blocks {
		p := &pendingBlock{ref: b}
		for _, in := range snap.Replicas(tenantID, b.ID, nil) {
			if snap.Healthy(&in) {
				p.replicas = append(p.replicas, in)
			}
		}
		pending = append(pending, p)
	}
	type group struct {
		in     ring.Instance
		blocks []*pendingBlock
		answer A
		served []string
		failed []*storepb.BlockError
		err    error
	}
	var (
		answers []A
		failed  []BlockFailure
	)
	for round := 0; len(pending) > 0; round++ {
		var groups []*group
		byID := map[string]*group{}
		asked := 0
		for _, p := range pending {
			if p.next >= len(p.replicas) {
				failed = append(failed, BlockFailure{ID: p.ref.ID, Attempts: append(p.attempts, Attempt{Err: errNoReplica})})
				continue
			}
			in := p.replicas[p.next]
			p.next++
			g := byID[in.ID]
			if g == nil {
				g = &group{in: in}
				byID[in.ID] = g
				groups = append(groups, g)
			}
			g.blocks = append(g.blocks, p)
			asked++
		}
		if round > 0 {
			c.m.blockRetries.Add(float64(asked))
		}
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Go(func() {
				ids := make([]string, len(g.blocks))
				for i, p := range g.blocks {
					ids[i] = p.ref.ID.String()
				}
				cl, err := c.clients.Get(g.in.Addr)
				if err == nil {
					g.answer, g.served, g.failed, err = f(ctx, cl, ids)
				}
				g.err = err
				c.m.requests.WithLabelValues(rpc, outcome(err)).Inc()
				c.m.blocksQueried.Add(float64(len(g.blocks)))
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pending = pending[:0]
		for _, g := range groups {
			if g.err != nil {
				// A store-gateway's class is the code's (ToStatus): block
				// errors carry only the code, so both are read the same way.
				if ingesterpb.ClassOfCode(status.Code(g.err)) == ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT {
					return nil, fmt.Errorf("%s from store-gateway %s: %w", rpc, g.in.ID, g.err)
				}
				c.log.Warn("store-gateway failed, trying another replica", "rpc", rpc, "instance", g.in.ID, "addr", g.in.Addr, "blocks", len(g.blocks), "err", g.err)
				for _, p := range g.blocks {
					p.attempts = append(p.attempts, Attempt{Instance: g.in.ID, Addr: g.in.Addr, Err: g.err})
					pending = append(pending, p)
				}
				continue
			}
			answers = append(answers, g.answer)
			for _, p := range g.blocks {
				if containsID(g.served, p.ref.ID) {
					continue
				}
				a := Attempt{Instance: g.in.ID, Addr: g.in.Addr, Err: errNotQueried}
				if be := blockErrorFor(g.failed, p.ref.ID); be != nil {
					a.Err = status.Error(codes.Code(be.GetCode()), be.GetMessage())
				}
				p.attempts = append(p.attempts, a)
				if ingesterpb.ClassOfCode(status.Code(a.Err)) == ingesterpb.ErrorClass_ERROR_CLASS_DATA_LOSS {
					c.log.Warn("store-gateway found a block damaged; not asking another replica", "rpc", rpc, "tenant", tenantID, "block", p.ref.ID, "instance", g.in.ID, "err", a.Err)
					failed = append(failed, BlockFailure{ID: p.ref.ID, Attempts: p.attempts, DataLoss: true})
					continue
				}
				if a.Err != errNotQueried {
					c.log.Warn("store-gateway failed a block, trying another replica", "rpc", rpc, "tenant", tenantID, "block", p.ref.ID, "instance", g.in.ID, "err", a.Err)
				}
				pending = append(pending, p)
			}
		}
	}
	if len(failed) == 0 {
		return answers, nil
	}
	if failed = c.skipCovered(rpc, tenantID, blocks, failed); len(failed) > 0 {
		return nil, &UnavailableError{RPC: rpc, Tenant: tenantID, Blocks: failed}
	}
	return answers, nil
}

// blockErrorFor returns id's error among errs, or nil.
func blockErrorFor(errs []*storepb.BlockError, id ulid.ULID) *storepb.BlockError {
	s := id.String()
	for _, e := range errs {
		if e.GetBlockId() == s {
			return e
		}
	}
	return nil
}

func containsID(ids []string, id ulid.ULID) bool {
	s := id.String()
	for _, x := range ids {
		if x == s {
			return true
		}
	}
	return false
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "success"
}

// blocksFor returns the tenant's blocks overlapping [mint, maxt].
func (c *Client) blocksFor(ctx context.Context, tenantID string, mint, maxt int64) ([]bucketindex.BlockRef, error) {
	if mint > maxt {
		return nil, nil
	}
	blocks, err := c.blocks.Blocks(ctx, tenantID, mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("listing blocks of tenant %s: %w", tenantID, err)
	}
	return blocks, nil
}

// LabelNames returns the sorted label names of the tenant's series in the
// blocks overlapping [mint, maxt] that match ms (all without matchers), at
// most limit (0: all).
func (c *Client) LabelNames(ctx context.Context, tenantID string, mint, maxt int64, ms []*labels.Matcher, limit int) ([]string, error) {
	pms := ingesterpb.FromMatchers(ms)
	answers, err := Fetch(ctx, c, "LabelNames", tenantID, mint, maxt, func(ctx context.Context, cl storepb.StoreGatewayClient, ids []string) ([]string, []string, []*storepb.BlockError, error) {
		resp, err := cl.LabelNames(ctx, &storepb.LabelNamesRequest{Tenant: tenantID, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, Limit: int64(limit)})
		return resp.GetNames(), resp.GetQueriedBlocks(), resp.GetBlockErrors(), err
	})
	if err != nil || len(answers) == 0 {
		return nil, err
	}
	return ingesterpb.MergeStrings(answers, limit), nil
}

// LabelValues returns the sorted values of label name, likewise.
func (c *Client) LabelValues(ctx context.Context, tenantID, name string, mint, maxt int64, ms []*labels.Matcher, limit int) ([]string, error) {
	pms := ingesterpb.FromMatchers(ms)
	answers, err := Fetch(ctx, c, "LabelValues", tenantID, mint, maxt, func(ctx context.Context, cl storepb.StoreGatewayClient, ids []string) ([]string, []string, []*storepb.BlockError, error) {
		resp, err := cl.LabelValues(ctx, &storepb.LabelValuesRequest{Tenant: tenantID, Name: name, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, Limit: int64(limit)})
		return resp.GetValues(), resp.GetQueriedBlocks(), resp.GetBlockErrors(), err
	})
	if err != nil || len(answers) == 0 {
		return nil, err
	}
	return ingesterpb.MergeStrings(answers, limit), nil
}
