package querier

import (
	"cmp"
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// exemplarQueryable is a tenant's storage.ExemplarQueryable.
type exemplarQueryable struct {
	f      *fanout
	tenant string
}

func (e exemplarQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return exemplarQuerier{ctx: ctx, f: e.f, tenant: e.tenant}, nil
}

type exemplarQuerier struct {
	ctx    context.Context
	f      *fanout
	tenant string
}

// Select returns the exemplars in [start, end] of the series matching any
// of the matcher sets, series sorted by labels and each series' exemplars
// by time, replicas' copies dropped. Failures the ring tolerates are
// dropped silently: the interface has no warnings.
func (e exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	req := &ingesterpb.ExemplarsRequest{Tenant: e.tenant, StartMs: start, EndMs: end}
	for _, ms := range matchers {
		req.MatcherSets = append(req.MatcherSets, &ingesterpb.MatcherSet{Matchers: ingesterpb.FromMatchers(ms)})
	}
	answers, _, err := fanOut(e.ctx, e.f, "QueryExemplars", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) ([]*ingesterpb.ExemplarSeries, error) {
		resp, err := c.QueryExemplars(ctx, req)
		return resp.GetSeries(), err
	})
	if err != nil {
		return nil, err
	}
	return mergeExemplars(answers), nil
}

func mergeExemplars(answers [][]*ingesterpb.ExemplarSeries) []exemplar.QueryResult {
	var (
		out []exemplar.QueryResult
		b   labels.ScratchBuilder
	)
	for _, a := range answers {
		for _, es := range a {
			qr := exemplar.QueryResult{SeriesLabels: protoLabels(&b, es.GetLabels())}
			for _, pe := range es.GetExemplars() {
				qr.Exemplars = append(qr.Exemplars, exemplar.Exemplar{
					Labels: protoLabels(&b, pe.GetLabels()), Value: pe.GetValue(), Ts: pe.GetTimestamp(), HasTs: true,
				})
			}
			out = append(out, qr)
		}
	}
	slices.SortStableFunc(out, func(x, y exemplar.QueryResult) int { return labels.Compare(x.SeriesLabels, y.SeriesLabels) })
	merged := out[:0]
	for _, qr := range out {
		if n := len(merged); n > 0 && labels.Equal(merged[n-1].SeriesLabels, qr.SeriesLabels) {
			merged[n-1].Exemplars = append(merged[n-1].Exemplars, qr.Exemplars...)
			continue
		}
		merged = append(merged, qr)
	}
	for i := range merged {
		es := merged[i].Exemplars
		slices.SortStableFunc(es, func(x, y exemplar.Exemplar) int { return cmp.Compare(x.Ts, y.Ts) })
		merged[i].Exemplars = slices.CompactFunc(es, func(x, y exemplar.Exemplar) bool {
			return x.Ts == y.Ts && math.Float64bits(x.Value) == math.Float64bits(y.Value) && labels.Equal(x.Labels, y.Labels)
		})
	}
	if merged == nil {
		merged = []exemplar.QueryResult{}
	}
	return merged
}
