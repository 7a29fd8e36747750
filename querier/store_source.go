package querier

import (
	"context"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/strata-metrics/strata/storegateway/storeclient"
)

// StoreGateways is what the querier needs to read long-term blocks
// (*storeclient.Client). Its methods are goroutine-safe and return sorted
// answers; Series' chunk bytes are never modified and may be kept.
type StoreGateways interface {
	Series(ctx context.Context, tenantID string, mint, maxt int64, ms []*labels.Matcher, opts storeclient.SeriesOptions) ([]storeclient.Series, error)
	LabelNames(ctx context.Context, tenantID string, mint, maxt int64, ms []*labels.Matcher, limit int) ([]string, error)
	LabelValues(ctx context.Context, tenantID, name string, mint, maxt int64, ms []*labels.Matcher, limit int) ([]string, error)
}

// storeReplica marks chunks from long-term blocks in fetchedSeries, apart
// from the ingesters' answers (numbered from 0).
const storeReplica = 1 << 20

// storeSource reads a tenant's long-term series through the store-gateways.
type storeSource struct{ sg StoreGateways }

func (s storeSource) querier(tenantID string, mint, maxt int64) (storage.Querier, error) {
	return &storeQuerier{sg: s.sg, tenant: tenantID, mint: mint, maxt: maxt}, nil
}

// storeQuerier is one tenant's storage.Querier over the store-gateways for
// [mint, maxt]. Like ingesterQuerier, Select fetches in the background and
// Close cancels and waits.
type storeQuerier struct {
	sg         StoreGateways
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
	set := &lazySeriesSet{ready: make(chan struct{})}
	q.wg.Go(func() {
		defer close(set.ready)
		ss, err := q.sg.Series(ctx, q.tenant, mint, maxt, ms, storeclient.SeriesOptions{SkipChunks: labelsOnly, Limit: limit})
		if err != nil {
			set.set = storage.ErrSeriesSet(err)
			return
		}
		if labelsOnly {
			out := make([]labelsSeries, len(ss))
			for i := range ss {
				out[i] = labelsSeries{lset: ss[i].Labels}
			}
			set.set = &seriesSlice[labelsSeries, *labelsSeries]{series: out}
			return
		}
		n := 0
		for i := range ss {
			n += len(ss[i].Chunks)
		}
		slab := make([]chunk, 0, n)
		out := make([]fetchedSeries, len(ss))
		for i := range ss {
			first := len(slab)
			for _, c := range ss[i].Chunks {
				slab = append(slab, chunk{mint: c.MinTime, maxt: c.MaxTime, data: c.Data, enc: c.Encoding, replica: storeReplica})
			}
			out[i] = fetchedSeries{lset: ss[i].Labels, chunks: slab[first:len(slab):len(slab)], mint: mint, maxt: maxt}
		}
		set.set = &seriesSlice[fetchedSeries, *fetchedSeries]{series: out}
	})
	return set
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
