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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/querier/storequery"
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
	// grace is the most a read whose answers already cover every series
	// waits for its stragglers (-querier.ingester-straggler-grace).
	grace time.Duration
	// since is time.Since, the clock of the grace; tests stretch it.
	since func(time.Time) time.Duration
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
		if ingesterpb.FromStatus(f.Err).Class != ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT {
			return false
		}
	}
	return len(e.Failures) > 0
}

// fanOut calls call on every ingester of the ring's read set in parallel
// and returns the answers of those that succeeded, in no particular order,
// with one warning per failed ingester. When more fail than the set
// tolerates (MaxErrors instances, or with zones any number within
// MaxUnavailableZones zones), the calls still running are canceled and
// fanOut returns an *UnavailableError naming the failures (or ctx's error
// when ctx ended first). replica is the instance's index in the set, for provenance.
//
// For the reads whose answers are merged as a union (see returnsWhenCovered),
// fanOut also stops waiting once the instances that succeeded cover every
// series: once the instances that have not answered (failed or still
// running) are a set the read set tolerates, the stragglers get a grace of
// as long as the cover took, at most f.grace
// (-querier.ingester-straggler-grace); those still running then are
// canceled and counted (strata_querier_ingester_stragglers_total), without
// a warning. A hung ingester (SIGSTOP, a dead host whose connection has not
// reset) then costs a read at most that grace while its replicas answer,
// instead of holding it until -querier.timeout, whether the read was sent
// before or after it hung.
//
// Why the grace scales with the cover's time: healthy replicas hold the same
// series and answer in about the same time, so a straggler that is not hung
// is almost always in within as long again, and a read then merges every
// replica, the same answer whichever were first (a sample no quorum
// acknowledged, still being written or refused by the others, shows or not
// alike in repeated reads); a hung one costs at most twice the cover's time
// (a fast read stays fast) and never more than f.grace.
//
// Why the answer is whole without the stragglers: a write is acknowledged
// once RF/2+1 of each series' RF replicas accepted it (distinct zones with
// zone awareness). The read set leaves out the unhealthy instances and
// tolerates failures so that, counted together, at most RF/2 instances (or,
// with zones, instances in at most RF/2 zones) are missing from the answer
// (see ring.GetAllHealthy); rs.Tolerates is that test. At most RF/2 missing
// cannot include all RF/2+1 instances (zones) that acknowledged a sample,
// so one of them answered: R+W > RF, with R = RF-RF/2 answers. Whether an
// instance is missing because it failed or because it is slow does not
// matter to that count, so a straggler may be given up under exactly the
// rule that already tolerates a failure. Without zones this holds after
// Quorum() successes (2 of 3 at RF 3; all of them at RF 1, where MaxErrors
// is 0 and nothing is ever given up); with zones, once every zone but
// MaxUnavailableZones has answered completely. A hang on more instances
// than that still waits, as before, for ctx (-querier.timeout) to end the
// read. The rule is the ring's, not each series' replication set's: with
// tokens spread over every instance, any two instances share some set, so
// the finer rule would give up no more in practice. What a stopped
// straggler alone held (samples no quorum acknowledged) may be missing, as
// it may when that straggler fails; the merge deduplicates the replicas
// that answered as it does every replica.
func fanOut[T any](ctx context.Context, f *fanout, rpc string, call func(ctx context.Context, c ingesterpb.IngesterClient, replica int) (T, error)) ([]T, annotations.Annotations, error) {
	rs, err := f.ring.GetAllHealthy(ring.Read)
	if err != nil {
		return nil, nil, fmt.Errorf("find ingesters for %s: %w", rpc, err)
	}
	start := time.Now()
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		results  = make([]T, 0, len(rs.Instances))
		failures []InstanceFailure
		zones    []string // of failures
		gaveUp   bool
		// answered[i] is set when instance i succeeded; covered once the
		// others may be given up (see above), cut once they were.
		answered  = make([]bool, len(rs.Instances))
		succeeded int
		running   = len(rs.Instances)
		covered   bool
		cut       bool
		graceEnd  *time.Timer
		early     = returnsWhenCovered(rpc)
	)
	// cutStragglers cancels the calls still running, with mu held.
	cutStragglers := func() {
		if cut {
			return
		}
		cut = true
		if running > 0 {
			f.m.stragglers.WithLabelValues(rpc, stragglerCanceled).Add(float64(running))
		}
		cancel() // their replicas answered
	}
	for i := range rs.Instances {
		in := &rs.Instances[i]
		wg.Go(func() {
			callStart := time.Now()
			c, err := f.clients.Get(in.Addr)
			var v T
			if err == nil {
				v, err = call(callCtx, c, i)
			}
			f.m.requestDuration.WithLabelValues(rpc).Observe(time.Since(callStart).Seconds())

			mu.Lock()
			defer mu.Unlock()
			running--
			if covered && !cut {
				f.m.stragglers.WithLabelValues(rpc, stragglerAnswered).Inc()
			}
			switch {
			case err == nil:
				results = append(results, v)
				f.m.requests.WithLabelValues(rpc, outcomeSuccess).Inc()
				answered[i] = true
				succeeded++
				if early && !covered && !gaveUp && coveredBy(rs, answered, succeeded) {
					covered = true
					if wait := min(f.grace, f.since(start)); wait > 0 && running > 0 {
						graceEnd = time.AfterFunc(wait, func() {
							mu.Lock()
							defer mu.Unlock()
							cutStragglers()
						})
					} else {
						cutStragglers()
					}
				}
			case gaveUp || ctx.Err() != nil || (cut && isCanceled(err)):
				// A straggler given up once the answer was complete is
				// canceled, not failed. One that failed on its own (its
				// error beat the cancel) still gets its warning below; it
				// is one of the instances coverage allowed to be missing,
				// so it cannot make the read fail.
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
	// Once cut or given up, the calls still running were canceled: gRPC
	// ends a call locally on cancel, without an answer from the (maybe
	// hung) ingester, so this waits only for the calls that matter and,
	// once covered, for the grace.
	wg.Wait()
	if graceEnd != nil {
		graceEnd.Stop() // every straggler answered within it
	}

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

// returnsWhenCovered reports whether fanOut may stop waiting for rpc's
// stragglers once the answers cover every series: the reads whose answers
// are merged as a union (series, label sets, names, values, exemplars,
// metadata), where a second replica's answer adds nothing. TSDBStatus and
// UserStats sum every answer and divide by the copies of each series, so
// they wait for every instance; so does an RPC not listed here.
func returnsWhenCovered(rpc string) bool {
	switch rpc {
	case "QueryStream", "Series", "LabelNames", "LabelValues", "QueryExemplars", "Metadata":
		return true
	}
	return false
}

// coveredBy reports whether the instances not answered (answered[i]
// false: failed or still running; succeeded is how many are true) are a
// set rs tolerates, so that every series has a replica among those that
// answered.
func coveredBy(rs ring.ReplicationSet, answered []bool, succeeded int) bool {
	missing := len(answered) - succeeded
	if missing <= rs.MaxErrors {
		return true // no allocation in the common case
	}
	if rs.MaxUnavailableZones <= 0 {
		return false
	}
	zones := make([]string, 0, missing)
	for i, ok := range answered {
		if !ok {
			zones = append(zones, rs.Instances[i].Zone)
		}
	}
	return rs.Tolerates(zones)
}

// isCanceled reports whether err is a call's end by cancellation, as the
// gRPC client reports it (codes.Canceled) or as a context error.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
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

// isUnavailable reports whether err means the ingesters or the
// store-gateways could not answer and a retry may pass. Damaged blocks
// (isDataLoss) are not: no retry brings them back.
func isUnavailable(err error) bool {
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return !ue.badInput()
	}
	var se *storequery.UnavailableError
	if errors.As(err, &se) {
		return !se.DataLoss()
	}
	return errors.Is(err, ring.ErrTooFewHealthy) || errors.Is(err, ring.ErrEmpty)
}

// isDataLoss reports whether the store-gateways found every block they
// could not serve damaged, with no other copy of its data in the query.
func isDataLoss(err error) bool {
	var se *storequery.UnavailableError
	return errors.As(err, &se) && se.DataLoss()
}

// isBadInput reports whether the ingesters rejected the request itself.
func isBadInput(err error) bool {
	var ue *UnavailableError
	return errors.As(err, &ue) && ue.badInput()
}
