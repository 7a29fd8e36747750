package querier

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/querier/storequery"
)

// storeReplica marks chunks from long-term blocks in fetchedSeries, apart
// from the ingesters' answers (numbered from 0).
const storeReplica = 1 << 20

// storeSource reads a tenant's long-term series through the store-gateways.
type storeSource struct{ sg *storequery.Client }

func (s storeSource) querier(tenantID string, mint, maxt int64) (storage.Querier, error) {
	return &storeQuerier{sg: s.sg, tenant: tenantID, mint: mint, maxt: maxt}, nil
}

// storeQuerier is one tenant's storage.Querier over the store-gateways for
// [mint, maxt]. Like ingesterQuerier, Select fetches in the background and
// Close cancels and waits.
type storeQuerier struct {
	sg         *storequery.Client
	tenant     string
	mint, maxt int64

	mu      sync.Mutex
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

func (q *storeQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt, limit, labelsOnly := q.mint, q.maxt, 0, false
	if hints != nil {
		if hints.Start != 0 || hints.End != 0 {
			mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
		}
		limit, labelsOnly = hints.Limit, hints.Func == "series"
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	ctx, cancel := context.WithCancel(ctx)
	q.mu.Lock()
	q.cancels = append(q.cancels, cancel)
	q.mu.Unlock()
	pms := ingesterpb.FromMatchers(ms)
	set := &lazySeriesSet{ready: make(chan struct{})}
	q.wg.Go(func() {
		defer close(set.ready)
		if labelsOnly {
			set.set = q.selectLabels(ctx, mint, maxt, limit, pms)
		} else {
			set.set = q.selectChunks(ctx, mint, maxt, limit, pms)
		}
	})
	return set
}

// selectChunks merges the store-gateways' answers as selectChunks of the
// ingesterQuerier merges the ingesters': one mergeReplicas for every copy
// of a series, whichever blocks and store-gateways it came from.
func (q *storeQuerier) selectChunks(ctx context.Context, mint, maxt int64, limit int, pms []*ingesterpb.LabelMatcher) storage.SeriesSet {
	answers, err := storequery.Fetch(ctx, q.sg, "Series", q.tenant, mint, maxt, func(ctx context.Context, c storepb.StoreGatewayClient, ids []string) (streamAnswer, []string, []*storepb.BlockError, error) {
		req := &storepb.SeriesRequest{Tenant: q.tenant, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, Limit: int64(limit)}
		return readStoreSeries(ctx, c, req, mint, maxt)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, len(answers))
	for i, a := range answers {
		sets[i] = &seriesSlice[fetchedSeries, *fetchedSeries]{series: a.series}
	}
	return storage.NewMergeSeriesSet(sets, limit, mergeReplicas)
}

func (q *storeQuerier) selectLabels(ctx context.Context, mint, maxt int64, limit int, pms []*ingesterpb.LabelMatcher) storage.SeriesSet {
	answers, err := storequery.Fetch(ctx, q.sg, "Series", q.tenant, mint, maxt, func(ctx context.Context, c storepb.StoreGatewayClient, ids []string) ([]labelsSeries, []string, []*storepb.BlockError, error) {
		req := &storepb.SeriesRequest{Tenant: q.tenant, StartMs: mint, EndMs: maxt, Matchers: pms, BlockIds: ids, SkipChunks: true, Limit: int64(limit)}
		return readStoreLabels(ctx, c, req)
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	sets := make([]storage.SeriesSet, len(answers))
	for i, a := range answers {
		sets[i] = &seriesSlice[labelsSeries, *labelsSeries]{series: a}
	}
	return storage.NewMergeSeriesSet(sets, limit, firstSeries)
}

func (q *storeQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, err := q.sg.LabelNames(ctx, q.tenant, q.mint, q.maxt, ms, labelLimit(hints))
	return names, nil, err
}

func (q *storeQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	vals, err := q.sg.LabelValues(ctx, q.tenant, name, q.mint, q.maxt, ms, labelLimit(hints))
	return vals, nil, err
}

func (q *storeQuerier) Close() error {
	q.mu.Lock()
	for _, cancel := range q.cancels {
		cancel()
	}
	q.cancels = nil
	q.mu.Unlock()
	q.wg.Wait()
	return nil
}
