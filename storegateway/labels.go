package storegateway

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
)

// LabelNames returns the sorted label names of the named blocks' series
// that match the matchers (of all series without matchers). As in
// Prometheus' own blocks, the time range selects blocks, not series.
func (g *StoreGateway) LabelNames(ctx context.Context, req *storepb.LabelNamesRequest) (*storepb.LabelNamesResponse, error) {
	start := time.Now()
	defer func() { g.m.requestTime.WithLabelValues("LabelNames").Observe(time.Since(start).Seconds()) }()
	r, err := parseRequest(req.GetTenant(), req.GetBlockIds(), req.GetMatchers())
	if err != nil {
		return nil, g.fail("LabelNames", err)
	}
	lists := make([][]string, len(r.ids))
	errs, err := g.eachBlock(ctx, r, func(ctx context.Context, i int, lb *loadedBlock) error {
		var names []string
		var err error
		if len(r.ms) == 0 {
			names, err = lb.ir.LabelNames(ctx)
		} else {
			var refs []storage.SeriesRef
			if refs, err = g.postingsFor(ctx, lb, r.ms); err == nil {
				names, err = lb.ir.LabelNamesFor(ctx, index.NewListPostings(refs))
			}
		}
		if err != nil {
			return fmt.Errorf("label names of block %s: %w", lb.key.id, err)
		}
		lists[i] = cloneAll(names)
		return nil
	})
	if err != nil {
		return nil, g.fail("LabelNames", err)
	}
	queried, failed, err := g.outcomes("LabelNames", r, errs)
	if err != nil {
		return nil, g.fail("LabelNames", err)
	}
	return &storepb.LabelNamesResponse{Names: ingesterpb.MergeStrings(lists, int(req.GetLimit())), QueriedBlocks: queried, BlockErrors: failed}, nil
}

// LabelValues returns the sorted values of one label in the named blocks'
// series that match the matchers.
func (g *StoreGateway) LabelValues(ctx context.Context, req *storepb.LabelValuesRequest) (*storepb.LabelValuesResponse, error) {
	start := time.Now()
	defer func() { g.m.requestTime.WithLabelValues("LabelValues").Observe(time.Since(start).Seconds()) }()
	r, err := parseRequest(req.GetTenant(), req.GetBlockIds(), req.GetMatchers())
	if err != nil {
		return nil, g.fail("LabelValues", err)
	}
	name := req.GetName()
	lists := make([][]string, len(r.ids))
	errs, err := g.eachBlock(ctx, r, func(ctx context.Context, i int, lb *loadedBlock) error {
		vals, err := g.labelValues(ctx, lb, name, r.ms)
		if err != nil {
			return fmt.Errorf("values of label %q in block %s: %w", name, lb.key.id, err)
		}
		lists[i] = cloneAll(vals)
		return nil
	})
	if err != nil {
		return nil, g.fail("LabelValues", err)
	}
	queried, failed, err := g.outcomes("LabelValues", r, errs)
	if err != nil {
		return nil, g.fail("LabelValues", err)
	}
	return &storepb.LabelValuesResponse{Values: ingesterpb.MergeStrings(lists, int(req.GetLimit())), QueriedBlocks: queried, BlockErrors: failed}, nil
}

// labelValues is Prometheus' labelValuesWithMatchers (tsdb/querier.go)
// over the postings cache: the values of name that matchers on name accept,
// then, with matchers on other labels, those some matching series has.
func (g *StoreGateway) labelValues(ctx context.Context, lb *loadedBlock, name string, ms []*labels.Matcher) ([]string, error) {
	all, err := lb.ir.SortedLabelValues(ctx, name, nil)
	if err != nil || len(ms) == 0 {
		return all, err
	}
	others := false
	for _, m := range ms {
		if m.Name != name {
			others = true
			continue
		}
		all = slices.DeleteFunc(all, func(v string) bool { return !m.Matches(v) })
	}
	if len(all) == 0 || !others {
		return all, nil
	}
	refs, err := g.postingsFor(ctx, lb, ms)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	candidates, err := lb.ir.postingsPerValue(ctx, name, all)
	if err != nil {
		return nil, err
	}
	idx, err := index.FindIntersectingPostings(index.NewListPostings(refs), candidates)
	if err != nil {
		return nil, err
	}
	slices.Sort(idx)
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = all[k]
	}
	return out, nil
}

// fail counts a failed request and maps its error for gRPC.
func (g *StoreGateway) fail(rpc string, err error) error {
	g.m.requestErrors.WithLabelValues(rpc).Inc()
	return grpcError(err)
}
