package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/ring"
)

// ReplicaSets is what the querier needs from the ring (*ring.Ring).
type ReplicaSets interface {
	// GetAllHealthy returns every instance a read must ask and how many of
	// them (or, with zones, how many zones of them) may fail while every
	// series still has a replica answering. It does no I/O and is
	// goroutine-safe.
	GetAllHealthy(op ring.Operation) (ring.ReplicationSet, error)
}

// IngesterClients is what the querier needs from the client pool
// (*clientpool.Pool).
type IngesterClients interface {
	// Get returns the client of the ingester at addr (host:port), dialing
	// on first use. It is goroutine-safe; the client stays usable after
	// the call and is shared, so the caller must not close it.
	Get(addr string) (ingesterpb.IngesterClient, error)
}

// fanout asks every ingester of the ring's read set and tolerates the
// failures the set allows.
type fanout struct {
	ring    ReplicaSets
	clients IngesterClients
	m       *metrics
	log     *slog.Logger
}

// UnavailableError means more ingesters failed than the ring's read set
// tolerates, so some series may have no replica in the answer: the read
// fails rather than answer partially (HTTP 503, unless every failure was
// the request's fault).
type UnavailableError struct {
	RPC       string
	Asked     int
	MaxErrors int
	// MaxUnavailableZones is the ring's zone tolerance (0 without zones).
	MaxUnavailableZones int
	Failures            []InstanceFailure
}

// InstanceFailure is one ingester's failure.
type InstanceFailure struct {
	ID, Addr, Zone string
	Err            error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to ingesters: %d of %d failed, at most %d may", e.RPC, len(e.Failures), e.Asked, e.MaxErrors)
	if e.MaxUnavailableZones > 0 {
		fmt.Fprintf(&b, " (or all of %d zone(s))", e.MaxUnavailableZones)
	}
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "; %s (%s): %v", f.ID, f.Addr, f.Err)
	}
	return b.String()
}

// badInput reports whether every failure was the request's fault (the
// ingesters' ERROR_CLASS_BAD_INPUT): retrying cannot help.
func (e *UnavailableError) badInput() bool {
	for _, f := range e.Failures {
		if errorClass(f.Err) != ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT {
			return false
		}
	}
	return len(e.Failures) > 0
}

// errorClass returns the class an ingester put in the details of its gRPC
// status, or UNSPECIFIED.
func errorClass(err error) ingesterpb.ErrorClass {
	st, ok := status.FromError(err)
	if !ok {
		return ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED
	}
	for _, d := range st.Details() {
		if ed, ok := d.(*ingesterpb.ErrorDetails); ok {
			return ed.GetClass()
		}
	}
	return ingesterpb.ErrorClass_ERROR_CLASS_UNSPECIFIED
}

// fanOut calls call on every ingester of the ring's read set in parallel
// and returns the answers of those that succeeded, in no particular order,
// with one warning per failed ingester. When more fail than the set
// tolerates (MaxErrors instances, or with zones any number within
// MaxUnavailableZones zones), the calls still running are canceled and
// fanOut returns an *UnavailableError naming the failures (or ctx's error
// when ctx ended first). replica is the instance's index in the set, for provenance.
func fanOut[T any](ctx context.Context, f *fanout, rpc string, call func(ctx context.Context, c ingesterpb.IngesterClient, replica int) (T, error)) ([]T, annotations.Annotations, error) {
	rs, err := f.ring.GetAllHealthy(ring.Read)
	if err != nil {
		return nil, nil, fmt.Errorf("find ingesters for %s: %w", rpc, err)
	}
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		results  = make([]T, 0, len(rs.Instances))
		failures []InstanceFailure
		zones    []string // of failures
		gaveUp   bool
	)
	for i := range rs.Instances {
		in := &rs.Instances[i]
		wg.Go(func() {
			start := time.Now()
			c, err := f.clients.Get(in.Addr)
			var v T
			if err == nil {
				v, err = call(callCtx, c, i)
			}
			f.m.requestDuration.WithLabelValues(rpc).Observe(time.Since(start).Seconds())

			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results = append(results, v)
				f.m.requests.WithLabelValues(rpc, outcomeSuccess).Inc()
			case gaveUp || ctx.Err() != nil:
				f.m.requests.WithLabelValues(rpc, outcomeCanceled).Inc()
			default:
				f.m.requests.WithLabelValues(rpc, outcomeError).Inc()
				failures = append(failures, InstanceFailure{ID: in.ID, Addr: in.Addr, Zone: in.Zone, Err: err})
				zones = append(zones, in.Zone)
				if !rs.Tolerates(zones) {
					gaveUp = true
					cancel()
				}
			}
		})
	}
	wg.Wait()

	awaitDeadline(ctx)
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s to ingesters: %w", rpc, context.Cause(ctx))
	}
	if !rs.Tolerates(zones) {
		return nil, nil, &UnavailableError{RPC: rpc, Asked: len(rs.Instances), MaxErrors: rs.MaxErrors, MaxUnavailableZones: rs.MaxUnavailableZones, Failures: failures}
	}
	var warns annotations.Annotations
	for _, fl := range failures {
		f.log.Debug("ingester failed, answered by its replicas", "rpc", rpc, "ingester", fl.ID, "addr", fl.Addr, "err", fl.Err)
		warns.Add(fmt.Errorf("ingester %s (%s) failed %s, its replicas answered for it: %w", fl.ID, fl.Addr, rpc, fl.Err))
	}
	return results, warns, nil
}

// awaitDeadline waits for ctx to end when its deadline has passed. The
// timer that ends it may run a little after the ingesters' calls came back
// with DeadlineExceeded (their own timers fire at the same instant): the
// request failed because of the deadline, and ctx's cause says which one
// (the client's, -querier.timeout or the tenant's query_timeout).
func awaitDeadline(ctx context.Context) {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done()
	}
}

// isUnavailable reports whether err means the ingesters could not answer.
func isUnavailable(err error) bool {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return !ue.badInput()
	}
	return errors.Is(err, ring.ErrTooFewHealthy) || errors.Is(err, ring.ErrEmpty)
}

// isBadInput reports whether the ingesters rejected the request itself.
func isBadInput(err error) bool {
	var ue *UnavailableError
	return errors.As(err, &ue) && ue.badInput()
}
