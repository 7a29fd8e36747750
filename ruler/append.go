package ruler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/remotewrite"
)

// PushFunc writes a tenant's samples into the cluster: the distributor's
// Push in process. It may rewrite req and keeps nothing of it after it
// returns.
type PushFunc func(ctx context.Context, tenantID string, req *remotewrite.Request) error

// pushAppendable is the storage.Appendable of one tenant's rule manager:
// what its rules append goes to push. Within one group evaluation (the
// context carries a *groupBatch) every rule's samples, ALERTS and
// ALERTS_FOR_STATE included, are collected and sent as one push when the
// group is done (evalGroup); elsewhere (stale markers of a group that was
// removed) each Commit pushes.
type pushAppendable struct {
	tenantID string
	push     PushFunc
	// foreign holds the rule names of the tenant's groups that another
	// ruler evaluates: the stale markers upstream writes for a group that
	// left this ruler are dropped when it moved (the new owner writes
	// the series), kept when it was deleted.
	foreign atomic.Pointer[ruleNames]
}

// ruleNames are the recording rule and alert names of some groups.
type ruleNames struct {
	records, alerts map[string]bool
}

// movedStale reports whether s is a stale marker of a series a group that
// moved to another ruler produces.
func (n *ruleNames) movedStale(s *remotewrite.Series) bool {
	if n == nil || len(s.Samples) != 1 || !value.IsStaleNaN(s.Samples[0].Value) {
		return false
	}
	var name, alert string
	for _, l := range s.Labels {
		switch l.Name {
		case labels.MetricName:
			name = l.Value
		case labels.AlertName:
			alert = l.Value
		}
	}
	if name == "ALERTS" || name == "ALERTS_FOR_STATE" {
		return n.alerts[alert]
	}
	return n.records[name]
}

type batchKey struct{}

// groupBatch collects one group evaluation's series.
type groupBatch struct {
	series []remotewrite.Series
}

func withBatch(ctx context.Context, b *groupBatch) context.Context {
	return context.WithValue(ctx, batchKey{}, b)
}

// flush pushes what b holds, then empties it.
func (b *groupBatch) flush(ctx context.Context, tenantID string, push PushFunc) error {
	if len(b.series) == 0 {
		return nil
	}
	req := &remotewrite.Request{Series: b.series}
	b.series = nil
	return push(ctx, tenantID, req)
}

// Appender implements storage.Appendable.
func (a *pushAppendable) Appender(ctx context.Context) storage.Appender {
	b, _ := ctx.Value(batchKey{}).(*groupBatch)
	return &pushAppender{a: a, ctx: ctx, batch: b}
}

// pushAppender is one rule's (or one cleanup's) transaction.
type pushAppender struct {
	a      *pushAppendable
	ctx    context.Context
	batch  *groupBatch // nil: Commit pushes
	series []remotewrite.Series
	// Series' labels and samples are cut from these (capacity cut to
	// length): a few allocations per rule instead of two per series. A
	// reallocation leaves the series cut before it on the old array.
	labelBuf  []remotewrite.Label
	sampleBuf []remotewrite.Sample
}

func (p *pushAppender) toLabels(l labels.Labels) []remotewrite.Label {
	start := len(p.labelBuf)
	l.Range(func(l labels.Label) { p.labelBuf = append(p.labelBuf, remotewrite.Label{Name: l.Name, Value: l.Value}) })
	return p.labelBuf[start:len(p.labelBuf):len(p.labelBuf)]
}

func (p *pushAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	p.sampleBuf = append(p.sampleBuf, remotewrite.Sample{Value: v, Timestamp: t})
	n := len(p.sampleBuf)
	p.series = append(p.series, remotewrite.Series{Labels: p.toLabels(l), Samples: p.sampleBuf[n-1 : n : n]})
	return 0, nil
}

func (p *pushAppender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	var rh remotewrite.Histogram
	switch {
	case h != nil:
		rh = fromHistogram(h)
	case fh != nil:
		rh = fromFloatHistogram(fh)
	default:
		return 0, errors.New("append histogram: neither an integer nor a float histogram")
	}
	rh.Timestamp = t
	p.series = append(p.series, remotewrite.Series{Labels: p.toLabels(l), Histograms: []remotewrite.Histogram{rh}})
	return 0, nil
}

func (p *pushAppender) Commit() error {
	if len(p.series) == 0 {
		return nil
	}
	series := p.series
	// The next transaction starts on fresh buffers: these stay with the
	// series until they are pushed.
	p.series, p.labelBuf, p.sampleBuf = nil, nil, nil
	if p.batch != nil {
		if p.batch.series == nil {
			p.batch.series = series
		} else {
			p.batch.series = append(p.batch.series, series...)
		}
		return nil
	}
	if foreign := p.a.foreign.Load(); foreign != nil {
		series = slices.DeleteFunc(series, func(s remotewrite.Series) bool { return foreign.movedStale(&s) })
		if len(series) == 0 {
			return nil
		}
	}
	req := &remotewrite.Request{Series: series}
	if err := p.a.push(p.ctx, p.a.tenantID, req); err != nil {
		return fmt.Errorf("push rule results: %w", err)
	}
	return nil
}

func (p *pushAppender) Rollback() error {
	p.series, p.labelBuf, p.sampleBuf = nil, nil, nil
	return nil
}

func (p *pushAppender) SetOptions(*storage.AppendOptions) {}

func (p *pushAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, nil // rules produce none
}

func (p *pushAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, nil
}

func (p *pushAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, nil
}

func (p *pushAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, nil
}

func fromSpans(s []histogram.Span) []remotewrite.BucketSpan {
	if len(s) == 0 {
		return nil
	}
	out := make([]remotewrite.BucketSpan, len(s))
	for i, sp := range s {
		out[i] = remotewrite.BucketSpan{Offset: sp.Offset, Length: sp.Length}
	}
	return out
}

func fromHistogram(h *histogram.Histogram) remotewrite.Histogram {
	return remotewrite.Histogram{
		CountInt: h.Count, Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCountInt: h.ZeroCount,
		NegativeSpans: fromSpans(h.NegativeSpans), NegativeDeltas: h.NegativeBuckets,
		PositiveSpans: fromSpans(h.PositiveSpans), PositiveDeltas: h.PositiveBuckets,
		ResetHint: resetHint(h.CounterResetHint), CustomValues: h.CustomValues,
	}
}

func fromFloatHistogram(h *histogram.FloatHistogram) remotewrite.Histogram {
	return remotewrite.Histogram{
		IsFloat:    true,
		CountFloat: h.Count, Sum: h.Sum, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold, ZeroCountFloat: h.ZeroCount,
		NegativeSpans: fromSpans(h.NegativeSpans), NegativeCounts: h.NegativeBuckets,
		PositiveSpans: fromSpans(h.PositiveSpans), PositiveCounts: h.PositiveBuckets,
		ResetHint: resetHint(h.CounterResetHint), CustomValues: h.CustomValues,
	}
}

func resetHint(h histogram.CounterResetHint) int32 {
	switch h {
	case histogram.CounterReset:
		return remotewrite.ResetHintYes
	case histogram.NotCounterReset:
		return remotewrite.ResetHintNo
	case histogram.GaugeType:
		return remotewrite.ResetHintGauge
	}
	return remotewrite.ResetHintUnknown
}
