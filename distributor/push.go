package distributor

import (
	"context"
	"errors"

	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// pushState is everything one push needs beyond its own stack, pooled so
// that a steady stream of pushes allocates nothing per series. It belongs
// to one push at a time; the per-ingester buffers do not live here (they
// go with their push goroutine, which may outlive the push).
type pushState struct {
	req *remotewrite.Request // the caller's, for the length of one Push
	val validator

	// tenantLabel is the tenant label value of this push's metrics
	// (Distributor.tenantLabels), looked up once per push.
	tenantLabel string

	key      []byte          // token hash input
	scratch  []byte          // one series, encoded once for its replicas
	replicas []ring.Instance // ring.Get's buffer
	items    []item          // quorum state per series, then per metadata entry
	batches  []batch         // one per ingester
	batchOf  map[string]int  // ingester id -> index in batches
}

func newPushState() *pushState {
	return &pushState{batchOf: map[string]int{}}
}

func (d *Distributor) putState(st *pushState) {
	d.releaseBatches(st)
	st.req = nil // the caller's: not pinned by the pool
	st.val = validator{}
	st.tenantLabel = ""
	d.states.Put(st)
}

// PushResult is what one Push sent to the ingesters: what validation, HA
// dedup and the rate limit kept of the request. With a nil error it is on
// a quorum of ingesters; with a *BadInputError, too, but for what an
// ingester rejected (the error names it).
type PushResult struct {
	Series, Samples, Histograms, Exemplars, Metadata int
	// Discarded counts the float and histogram samples validation (or
	// HA dedup) dropped from the request.
	Discarded int
}

// Push validates req against tenantID's limits, drops it when it comes
// from a non-elected HA replica, applies the tenant's ingestion rate
// limit, and replicates every series and metadata entry to a quorum of
// ingesters. Every protocol decoder (push_rw1.go) ends here, and so do
// callers in process, such as the ruler: they build req by hand (a
// remotewrite.Request literal; Reset is not needed before the first use),
// with no encoding.
//
// Buffers: Push reads and rewrites req in place (it sorts and cleans
// labels, strips the HA replica label and drops rejected series, so
// req.Series may come back shorter) and must have it to itself until it
// returns. It keeps nothing of req after it returns: every series is
// encoded into the distributor's own buffers before the first ingester is
// asked, and the pushes that go on after the quorum answered use those
// alone. So the caller may reuse req and the memory its strings view as
// soon as Push returns.
//
// Errors are of the classes of errors.go, which httpStatus maps to HTTP
// and an in-process caller reads with errors.As the same way: nil; a
// *BadInputError (some input can never be taken: do not resend it; the
// rest was stored); a *HADedupedError (a non-elected HA replica: dropped,
// do not resend); a *LimitedError (resend later); an error wrapping
// ring.ErrTooFewHealthy or ring.ErrEmpty (nothing was sent: resend); an
// *IngesterError (no quorum: resend); a *tenant.InvalidError for an
// invalid tenantID. The request rate limit and the refusal before reading
// a body belong to the HTTP handler; Push applies the ingestion rate limit
// to every caller.
func (d *Distributor) Push(ctx context.Context, tenantID string, req *remotewrite.Request) (PushResult, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return PushResult{}, err
	}
	st := d.states.Get().(*pushState)
	defer d.putState(st)
	st.req = req
	return d.distribute(ctx, st, tenantID)
}

// distribute is Push on st.req: validation, HA dedup, the ingestion rate
// limit, sharding and replication.
func (d *Distributor) distribute(ctx context.Context, st *pushState, tenantID string) (PushResult, error) {
	st.tenantLabel = d.tenantLabels.Value(tenantID)
	st.val.reset(d.limits.For(tenantID), d.cfg.NameValidationScheme == SchemeUTF8, d.now())
	// HA-pair dedup (ha.go), before validation: a non-elected replica's
	// request is dropped whole (202); the elected one's loses its replica
	// label.
	if err := d.dedupeHA(ctx, st, tenantID); err != nil {
		return PushResult{}, err
	}
	st.val.validate(st.req)
	// The per-tenant ingestion rate limit, on what validation kept: on
	// refusal st.req is emptied, so nothing is counted received or sent.
	// After validation, as in Cortex and Mimir: the limit is on samples
	// stored, so a sender's invalid samples (and a non-elected replica's,
	// dropped above) do not spend its budget, and a push whose valid part
	// fits is taken even when its whole would not. Refusing before
	// validation would be cheaper but would count what is never stored;
	// the costly case, a tenant flooding far over its limit, is refused
	// before its body is even read (refuseEarly in pushHTTP).
	rateErr := d.checkIngestionRate(tenantID, st)
	res := d.countValidation(st)
	if rateErr != nil {
		return PushResult{}, rateErr
	}
	valErr := st.val.err()

	if len(st.req.Series)+len(st.req.Metadata) == 0 {
		return res, valErr
	}
	if err := d.shard(st, tenantID); err != nil {
		return PushResult{}, err // the ring cannot place a quorum: nothing was sent
	}
	err := d.send(ctx, st, tenantID)
	var bad *BadInputError
	switch {
	case err == nil:
		return res, valErr
	case valErr != nil && errors.As(err, &bad):
		return res, &BadInputError{Msg: valErr.Error() + "; " + bad.Msg}
	case errors.As(err, &bad):
		return res, err
	}
	// A quorum failure outranks validation errors: a 4xx would make the
	// sender drop the good series, which are not stored.
	return PushResult{}, err
}

// countValidation feeds the received and discarded counters and returns
// what validation kept.
func (d *Distributor) countValidation(st *pushState) PushResult {
	v, tenantID := &st.val, st.tenantLabel
	for why := range numReasons {
		if n := v.samples[why]; n > 0 {
			d.m.discardedSamples.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
		if n := v.exemplars[why]; n > 0 {
			d.m.discardedExemplar.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
		if n := v.metadata[why]; n > 0 {
			d.m.discardedMetadata.WithLabelValues(tenantID, why.String()).Add(float64(n))
		}
	}
	samples, histograms, exemplars := st.req.SampleCount()
	if n := samples + histograms; n > 0 {
		d.m.receivedSamples.WithLabelValues(tenantID).Add(float64(n))
	}
	if exemplars > 0 {
		d.m.receivedExemplars.WithLabelValues(tenantID).Add(float64(exemplars))
	}
	if n := len(st.req.Metadata); n > 0 {
		d.m.receivedMetadata.WithLabelValues(tenantID).Add(float64(n))
	}
	discarded := 0
	for why := range numReasons {
		discarded += v.samples[why]
	}
	return PushResult{Series: len(st.req.Series), Samples: samples, Histograms: histograms, Exemplars: exemplars, Metadata: len(st.req.Metadata), Discarded: discarded}
}
