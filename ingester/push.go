package ingester

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

// pushState is everything one Push reuses from the last: the decoded request
// (whose strings are views into the PushRequest body) and the label scratch
// space. It lives in Ingester.pushPool and belongs to one Push at a time.
type pushState struct {
	req     remotewrite.Request
	sb      labels.ScratchBuilder // series labels
	exb     labels.ScratchBuilder // exemplar labels
	scratch labels.Labels         // overwritten per series; never retained
	rej     rejections

	// refs and lsets are resolve's answer per series of req: the head's ref
	// and labels, or 0 for a series the head does not have yet.
	refs  []storage.SeriesRef
	lsets []labels.Labels

	// order is this push in its tenant's pushOrder (push_order.go): the
	// label hashes of the series it touches, filled by resolve; waits are
	// the earlier pushes it waits for.
	order pushTicket
	waits []chan struct{}
}

func newPushState() any {
	return &pushState{sb: labels.NewScratchBuilder(16), exb: labels.NewScratchBuilder(4)}
}

// pushCounts are what one push appended.
type pushCounts struct {
	floats, histograms, exemplars, metadata int
}

// Push appends one batch of one tenant's series to its TSDB, opening the TSDB
// on the tenant's first push. Every valid sample is appended even when others
// are rejected; rejections come back as InvalidArgument with ErrorDetails
// {BAD_INPUT, rejected samples} and a message naming the first few.
func (i *Ingester) Push(ctx context.Context, r *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	start := time.Now()
	defer func() { i.metrics.pushDuration.Observe(time.Since(start).Seconds()) }()

	if err := i.disk.refusePush(); err != nil { // disk.go: below the free-space reserve
		return nil, err
	}
	u, err := i.acquire(ctx, r.GetTenant(), true)
	if err != nil {
		i.countUnavailable(err) // tenant_recover.go
		return nil, grpcError(err)
	}
	defer i.release(u)
	if err := i.refuseFailed(u); err != nil { // tenant_recover.go: a WAL write failed
		return nil, err
	}
	i.applyTenantConfig(u) // tenant_config.go

	st := i.pushPool.Get().(*pushState)
	defer func() {
		st.req.Reset()
		st.rej.reset()
		clear(st.lsets) // do not pin the head's labels
		clear(st.waits)
		i.pushPool.Put(st)
	}()
	if err := remotewrite.Decode(r.GetWriteRequest(), &st.req); err != nil {
		return nil, statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, 0, err.Error()) // says "decode write request: ..."
	}

	u.ship.pushing.RLock() // ship.go: a flush cuts the head between appends
	u.markPush(start)      // idle.go: under pushing, which an idle cut takes exclusively
	n, err := i.appendRequest(ctx, u, st)
	u.ship.pushing.RUnlock()
	if err != nil {
		return nil, err
	}
	i.metrics.countPush(n, &st.rej)
	i.rates.add(u.id, n.floats+n.histograms, start) // stats_rate.go
	i.countDiscarded(u.id, &st.rej)
	if st.rej.total() > 0 {
		return nil, st.rej.status(i.cfg, u)
	}
	return &ingesterpb.PushResponse{
		SamplesAppended:    int64(n.floats),
		HistogramsAppended: int64(n.histograms),
		ExemplarsAppended:  int64(n.exemplars),
		MetadataUpdated:    int64(n.metadata),
	}, nil
}

// appendRequest appends st.req to u's head in one transaction.
//
// It uses the v1 storage.Appender (db.Appender), not AppenderV2: remote-write
// 1.0 carries exemplars on TimeSeries of their own (Prometheus' queue manager
// sends each sample, exemplar and histogram as a separate entry), and only
// the v1 appender can append an exemplar without a sample in the same call
// (AppenderV2 attaches exemplars to a successful sample append). For float
// and histogram samples both do the same work in v0.315.1 (series lookup by
// ref, lockForAppend, appendable, batch append), and both implement
// storage.GetRef through dbAppender/dbAppenderV2. Created timestamps of
// remote-write 2.0 fit the v1 appender too (AppendSTZeroSample).
//
// Per series the labels are built into one scratch Labels (no allocation),
// hashed, and looked up with GetRef; only a series the head does not know
// yet gets its labels copied, because the head keeps the Labels it is given.
//
// Ordering: the head publishes a new series to every appender at once but
// writes its series record to the WAL only when its creator commits, and it
// checks a sample's order at append but stores and logs it at commit. Two
// pushes on one series that commit in the other order than they appended
// lose acknowledged samples (push_order.go). So a push first resolves its
// series (resolve), then enters the tenant's pushOrder and waits for the
// earlier pushes still in flight that touch one of its series, and leaves
// after its commit. Pushes on disjoint series run in parallel, creating
// series or not.
// The ingester bounds the future itself, whoever calls it: the distributor
// checks the same bound, but a sample years ahead that reached a head
// another way (any gRPC client) would block the tenant's ingestion until
// its block is cut, through restarts and flushes. futureSkew allows the
// clocks of distributor and ingester machines to differ.
const futureSkew = time.Minute

var errTooFarInFuture = errors.New("sample timestamp too far in the future")

// orderInRequestError is the error of a sample not after its series'
// previous one in the same request: a repeated timestamp is a duplicate,
// an earlier one out of order (rejectReason picks the message).
func orderInRequestError(ts, prev int64) error {
	if ts == prev {
		return storage.ErrDuplicateSampleForTimestamp
	}
	return storage.ErrOutOfOrderSample
}

// defaultCreationGracePeriod bounds the future without per-tenant limits,
// as -validation.create-grace-period's default.
const defaultCreationGracePeriod = 10 * time.Minute

// futureBound is the newest timestamp tenant's samples may have now.
func (i *Ingester) futureBound(tenantID string) int64 {
	grace := defaultCreationGracePeriod
	if i.limits != nil {
		grace = i.limits.For(tenantID).CreationGracePeriod
	}
	return time.Now().Add(grace + futureSkew).UnixMilli()
}

func (i *Ingester) appendRequest(ctx context.Context, u *tenantDB, st *pushState) (pushCounts, error) {
	var n pushCounts
	app := u.db.Appender(ctx)
	getRef, _ := app.(storage.GetRef) // dbAppender implements it; nil-safe below
	if st.resolve(getRef) {
		i.metrics.pushesCreatingSeries.Inc()
	}
	st.waits = u.order.enter(&st.order, st.waits)
	defer u.order.leave(&st.order)
	if len(st.waits) > 0 {
		i.metrics.pushesWaited.Inc()
		waitStart := time.Now()
		for _, w := range st.waits {
			select {
			case <-w:
			case <-ctx.Done():
				i.metrics.pushOrderWait.Observe(time.Since(waitStart).Seconds())
				// Nothing appended yet: leaving lets the pushes behind go.
				_ = app.Rollback()
				return pushCounts{}, grpcError(fmt.Errorf("wait for an earlier push on the same series: %w", ctx.Err()))
			}
		}
		i.metrics.pushOrderWait.Observe(time.Since(waitStart).Seconds())
	}
	maxTs := i.futureBound(u.id)
	// Without an out-of-order window, a series' samples must increase within
	// the request: the head would drop the others at commit, silently, after
	// the push was acknowledged. With one, they go to the out-of-order head.
	inOrder := u.appliedOOOWindow() == 0
	for k := range st.req.Series {
		s := &st.req.Series[k]
		nsamples := len(s.Samples) + len(s.Histograms)
		if nsamples == 0 && len(s.Exemplars) == 0 {
			continue
		}
		ref, ls := st.refs[k], st.lsets[k]
		if ref == 0 {
			// Unknown at resolve time; a push that committed since (one
			// this push waited for) may have created it.
			ref, ls, _ = st.lookup(s, getRef)
		}
		if ref == 0 {
			if nsamples == 0 {
				// Exemplars of a series the head does not have: nowhere to
				// attach them. Prometheus' own receiver drops them too.
				st.rej.exemplarDropped(exemplarUnknownSeries, len(s.Exemplars))
				continue
			}
			ls = ls.Copy() // a new series: the head keeps these labels
		}
		last := int64(math.MinInt64)
		for _, smp := range s.Samples {
			if smp.Timestamp > maxTs {
				st.rej.sample(errTooFarInFuture, ls, smp.Timestamp)
				continue
			}
			if inOrder && smp.Timestamp <= last {
				st.rej.sample(orderInRequestError(smp.Timestamp, last), ls, smp.Timestamp)
				continue
			}
			last = smp.Timestamp
			r, err := app.Append(ref, ls, smp.Timestamp, smp.Value)
			if err != nil {
				st.rej.sample(err, ls, smp.Timestamp)
				continue
			}
			ref = r
			n.floats++
		}
		lastH := int64(math.MinInt64)
		for h := range s.Histograms {
			hp := &s.Histograms[h]
			if hp.Timestamp > maxTs {
				st.rej.sample(errTooFarInFuture, ls, hp.Timestamp)
				continue
			}
			if inOrder && hp.Timestamp <= lastH {
				st.rej.sample(orderInRequestError(hp.Timestamp, lastH), ls, hp.Timestamp)
				continue
			}
			lastH = hp.Timestamp
			var (
				r   storage.SeriesRef
				err error
			)
			if hp.IsFloat {
				r, err = app.AppendHistogram(ref, ls, hp.Timestamp, nil, hp.ToFloatHistogram())
			} else {
				r, err = app.AppendHistogram(ref, ls, hp.Timestamp, hp.ToHistogram(), nil)
			}
			if err != nil {
				st.rej.sample(err, ls, hp.Timestamp)
				continue
			}
			ref = r
			n.histograms++
		}
		if len(s.Exemplars) > 0 {
			if ref == 0 {
				st.rej.exemplarDropped(exemplarUnknownSeries, len(s.Exemplars))
				continue
			}
			n.exemplars += st.appendExemplars(app, ref, ls, s.Exemplars)
		}
	}
	// A failed Commit rolled the push back, but its series stay in the head
	// and its records may be torn in the WAL; a Commit that succeeded after
	// another push's failed write has its records behind the torn one.
	// Either way the push is refused and the tenant reopened
	// (tenant_recover.go: checkCommit).
	if err := i.checkCommit(u, app.Commit()); err != nil {
		return pushCounts{}, err
	}
	var dropped int
	n.metadata, dropped = u.metadata.update(st.req.Metadata)
	if dropped > 0 {
		i.countMetadataDropped(u.id, dropped)
		st.rej.metadataDropped(dropped, int(u.config.maxMetadata.Load()))
	}
	return n, nil
}

// resolve looks up every series of st.req in the head, filling st.refs,
// st.lsets and st.order.hashes, and reports whether any series with samples
// is new to the head. Exemplar-only series the head lacks create nothing:
// their exemplars are dropped.
func (st *pushState) resolve(g storage.GetRef) (creates bool) {
	n := len(st.req.Series)
	st.refs = slices.Grow(st.refs[:0], n)[:n]
	st.lsets = slices.Grow(st.lsets[:0], n)[:n]
	st.order.hashes = st.order.hashes[:0]
	for k := range st.req.Series {
		s := &st.req.Series[k]
		st.refs[k], st.lsets[k] = 0, labels.EmptyLabels()
		if len(s.Samples)+len(s.Histograms) == 0 && len(s.Exemplars) == 0 {
			continue
		}
		ref, ls, hash := st.lookup(s, g)
		st.order.hashes = append(st.order.hashes, hash)
		if ref == 0 {
			creates = creates || len(s.Samples)+len(s.Histograms) > 0
			continue
		}
		st.refs[k], st.lsets[k] = ref, ls
	}
	return creates
}

// lookup builds s's labels (sorted, without empty values) into st.scratch and
// returns the head's ref and own copy of them when the head has the series,
// else 0 and st.scratch, which must be copied before it is appended; and the
// labels' hash.
func (st *pushState) lookup(s *remotewrite.Series, g storage.GetRef) (storage.SeriesRef, labels.Labels, uint64) {
	st.sb.Reset()
	sorted := true
	prev := ""
	for _, l := range s.Labels {
		if l.Value == "" {
			continue // the head drops empty labels; keep the hash equal to its
		}
		if l.Name < prev {
			sorted = false
		}
		prev = l.Name
		st.sb.Add(l.Name, l.Value)
	}
	if !sorted {
		st.sb.Sort()
	}
	st.sb.Overwrite(&st.scratch)
	hash := st.scratch.Hash()
	if g != nil {
		if ref, ls := g.GetRef(st.scratch, hash); ref != 0 {
			return ref, ls, hash
		}
	}
	return 0, st.scratch, hash
}

// appendExemplars appends exs to the series ref and returns how many were
// accepted. Exemplar labels are copied: the exemplar storage keeps them.
func (st *pushState) appendExemplars(app storage.Appender, ref storage.SeriesRef, ls labels.Labels, exs []remotewrite.Exemplar) int {
	var n int
	for k := range exs {
		ex := &exs[k]
		st.exb.Reset()
		for _, l := range ex.Labels {
			if l.Value != "" {
				st.exb.Add(l.Name, l.Value)
			}
		}
		st.exb.Sort()
		e := exemplar.Exemplar{Labels: st.exb.Labels(), Value: ex.Value, Ts: ex.Timestamp, HasTs: true}
		if _, err := app.AppendExemplar(ref, ls, e); err != nil {
			if errors.Is(err, storage.ErrOutOfOrderExemplar) {
				// Replicas and retries resend exemplars: dropped quietly, as
				// Prometheus' own receiver does, and counted.
				st.rej.exemplarDropped(exemplarOutOfOrder, 1)
				continue
			}
			st.rej.exemplar(err, ls, ex.Timestamp)
			continue
		}
		n++
	}
	return n
}
