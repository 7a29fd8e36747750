package distributor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
)

// failureClass is how a push to one ingester failed.
type failureClass uint8

const (
	classOK          failureClass = iota
	classBadInput                 // ERROR_CLASS_BAD_INPUT: the ingester kept the rest
	classLimited                  // ERROR_CLASS_LIMITED: will pass later
	classUnavailable              // ERROR_CLASS_UNAVAILABLE, codes.Unavailable, no connection
	classTimeout                  // -distributor.remote-timeout expired
	classError                    // anything else: a server-side failure
)

var classNames = [...]string{"ok", "bad_input", "limited", "unavailable", "timeout", "error"}

func (c failureClass) String() string { return classNames[c] }

// classify maps a Push error to its class: by the class the ingester put
// in the ErrorDetails of its status, else by the gRPC code
// (ingesterpb.FromStatus), never by text.
func classify(err error) failureClass {
	if err == nil {
		return classOK
	}
	switch ingesterpb.FromStatus(err).Class {
	case ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT:
		return classBadInput
	case ingesterpb.ErrorClass_ERROR_CLASS_LIMITED:
		return classLimited
	case ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE:
		return classUnavailable
	case ingesterpb.ErrorClass_ERROR_CLASS_TIMEOUT:
		return classTimeout
	}
	return classError
}

// batchResult is the outcome of one batch.
type batchResult struct {
	batch int
	class failureClass
	err   error
}

// send pushes every batch of st in parallel and waits until every item has
// reached its quorum, or one item cannot anymore. It returns nil, a
// *BadInputError (quorum reached, but an ingester rejected some input: it
// kept the rest), a *LimitedError or an *IngesterError.
//
// Pushes still running when send returns are not cancelled: they finish
// (or time out) in the background, owned by Run, so that every
// replica converges as Cortex and Mimir do. Cancelling them would save
// little (they are already on the wire) and leave the slowest replica
// without the data, one failure away from losing the quorum's durability.
// Each push has its own -distributor.remote-timeout, detached from the
// HTTP request's context (a sender that hangs up does not cut pushes in
// half); values such as trace ids still flow through.
func (d *Distributor) send(ctx context.Context, st *pushState, tenantID string) error {
	if len(st.batches) == 0 {
		return nil
	}
	results := make(chan batchResult, len(st.batches))
	pushCtx := context.WithoutCancel(ctx)
	for i := range st.batches {
		b := &st.batches[i]
		buf, inst := b.buf, b.inst
		b.buf = nil // owned by the push goroutine from here on
		d.sendStarted()
		go func() {
			defer d.sendDone()
			class, err := d.sendBatch(pushCtx, tenantID, inst, buf)
			results <- batchResult{batch: i, class: class, err: err}
		}()
	}

	pending := 0
	for i := range st.items {
		if !st.items[i].done {
			pending++
		}
	}
	var failed []batchResult // failed pushes, to name them
	var badInput *batchResult
	for received := 0; pending > 0; received++ {
		if received == len(st.batches) {
			return &IngesterError{Msg: fmt.Sprintf("BUG: %d items undecided after every push answered", pending)}
		}
		res := <-results
		if res.class == classBadInput && badInput == nil {
			badInput = &res
		}
		if res.class != classOK && res.class != classBadInput {
			failed = append(failed, res)
		}
		for _, idx := range st.batches[res.batch].items {
			it := &st.items[idx]
			if it.done {
				continue
			}
			if res.class == classOK || res.class == classBadInput {
				// An ingester that rejected bad input has done what it
				// can: the series is settled there, retrying cannot help.
				it.acks++
				if it.acks >= it.quorum {
					it.done = true
					pending--
				}
				continue
			}
			it.fails++
			if it.fails > it.maxErrors {
				return d.quorumError(st, idx, failed)
			}
		}
	}
	if badInput != nil {
		return &BadInputError{Msg: fmt.Sprintf("ingester %s rejected some of the data, the rest was stored: %s [%s]",
			st.batches[badInput.batch].inst.ID, grpcMessage(badInput.err), idIngesterRejected)}
	}
	return nil
}

// quorumError describes why item idx cannot reach its quorum. When every
// failure so far is a limit, the push gets 429; otherwise 500, because the
// sender must retry what was not stored.
func (d *Distributor) quorumError(st *pushState, idx int32, failed []batchResult) error {
	it := &st.items[idx]
	var what string
	if n := len(st.req.Series); int(idx) < n {
		what = "series " + remotewrite.FormatLabels(st.req.Series[idx].Labels)
	} else {
		what = "metadata for " + remotewrite.QuoteTrunc(st.req.Metadata[int(idx)-n].FamilyName)
	}
	var b strings.Builder
	limited := true
	for i, f := range failed {
		if i > 0 {
			b.WriteString("; ")
		}
		inst := &st.batches[f.batch].inst
		fmt.Fprintf(&b, "ingester %s (%s): %s: %s", inst.ID, inst.Addr, f.class, grpcMessage(f.err))
		limited = limited && f.class == classLimited
	}
	replicas := it.quorum + it.maxErrors
	if limited {
		return &LimitedError{Msg: fmt.Sprintf("%s was refused by %d of its %d ingesters for a limit, quorum needs %d: %s [%s]",
			what, it.fails, replicas, it.quorum, b.String(), idIngesterLimited)}
	}
	return &IngesterError{Msg: fmt.Sprintf("%s reached %d of %d ingesters, quorum needs %d: %s [%s]",
		what, it.acks, replicas, it.quorum, b.String(), idNoQuorum)}
}

// sendBatch sends one batch to one ingester and recycles its buffer.
func (d *Distributor) sendBatch(ctx context.Context, tenantID string, inst ring.Instance, buf *[]byte) (failureClass, error) {
	defer d.putBuf(buf)
	d.m.inflightPushes.Inc()
	defer d.m.inflightPushes.Dec()
	start := time.Now()
	err := d.callIngester(ctx, tenantID, inst.Addr, *buf)
	d.m.ingesterPushDuration.Observe(time.Since(start).Seconds())
	class := classify(err)
	if class != classOK {
		d.m.ingesterPushFailures.WithLabelValues(inst.ID, class.String()).Inc()
	}
	return class, err
}

// callIngester calls Push on the ingester at addr, within pushTimeout; an
// ingester whose client cannot be had is UNAVAILABLE.
func (d *Distributor) callIngester(ctx context.Context, tenantID, addr string, body []byte) error {
	c, err := d.clients.Get(addr)
	if err != nil {
		return &ingesterpb.ClassError{Class: ingesterpb.ErrorClass_ERROR_CLASS_UNAVAILABLE, Msg: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout(d.cfg.RemoteTimeout, len(body)))
	defer cancel()
	// Push marshals body before it returns; the caller may reuse it then.
	_, err = c.Push(ctx, &ingesterpb.PushRequest{Tenant: tenantID, WriteRequest: body})
	return err
}

// timeoutPerBytes is how much batch -distributor.remote-timeout covers.
const timeoutPerBytes = 8 << 20

// pushTimeout is the deadline of one batch of size bytes:
// -distributor.remote-timeout for every started 8 MiB. A Prometheus batch
// (a few hundred KiB) gets the flag's value; a push of 600,000 series was
// stored by the ingesters but answered 500 after a flat 2 s, and its
// sender resent it whole.
func pushTimeout(base time.Duration, size int) time.Duration {
	return base * time.Duration(1+size/timeoutPerBytes)
}

// grpcMessage is the message of a gRPC status, or err's text.
func grpcMessage(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}
