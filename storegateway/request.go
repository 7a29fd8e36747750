package storegateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/tenant"
)

// request is the part every RPC shares, checked.
type request struct {
	tenant string
	ids    []ulid.ULID // unique, in request order
	ms     []*labels.Matcher
}

func parseRequest(tenantID string, blockIDs []string, pms []*ingesterpb.LabelMatcher) (request, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return request{}, err
	}
	r := request{tenant: tenantID, ids: make([]ulid.ULID, 0, len(blockIDs))}
	for _, s := range blockIDs {
		id, err := ulid.ParseStrict(s)
		if err != nil {
			return request{}, &badInputError{fmt.Sprintf("invalid block id %q: %v", s, err)}
		}
		if !slices.Contains(r.ids, id) {
			r.ids = append(r.ids, id)
		}
	}
	ms, err := ingesterpb.ToMatchers(pms)
	if err != nil {
		return request{}, &badInputError{err.Error()}
	}
	r.ms = ms
	return r, nil
}

// enter takes a slot of -store-gateway.concurrency; leave gives it back.
func (g *StoreGateway) enter(ctx context.Context) error {
	select {
	case g.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *StoreGateway) leave() { <-g.gate }

// eachBlock calls f for every block of r in parallel, each with the block
// loaded and a concurrency slot held. It returns each block's error (a
// failed block does not stop the others) and the request's own (ctx).
func (g *StoreGateway) eachBlock(ctx context.Context, r request, f func(ctx context.Context, i int, lb *loadedBlock) error) ([]error, error) {
	errs := make([]error, len(r.ids))
	var wg sync.WaitGroup
	for i, id := range r.ids {
		wg.Go(func() {
			if err := g.enter(ctx); err != nil {
				errs[i] = err
				return
			}
			defer g.leave()
			lb, err := g.acquire(ctx, r.tenant, id)
			if err != nil {
				errs[i] = err
				return
			}
			defer g.release(lb)
			errs[i] = f(ctx, i, lb)
		})
	}
	wg.Wait()
	return errs, ctx.Err()
}

// outcomes splits r's blocks into those served and those that failed
// (errs[i] is block i's error), each failure counted and logged. A block
// that failed by the request's fault (bad input: a block of another
// tenant) fails the whole request instead: every replica would refuse it.
func (g *StoreGateway) outcomes(rpc string, r request, errs []error) ([]string, []*storepb.BlockError, error) {
	for _, err := range errs {
		if err != nil && isBadInput(err) {
			return nil, nil, err
		}
	}
	queried := make([]string, 0, len(r.ids))
	var failed []*storepb.BlockError
	for i, id := range r.ids {
		if errs[i] == nil {
			queried = append(queried, id.String())
			continue
		}
		failed = append(failed, g.blockFailed(rpc, r.tenant, id, errs[i]))
	}
	return queried, failed, nil
}

// postingsKey names the series list of one matcher set in one block.
type postingsKey struct {
	block    blockKey
	matchers string
}

// postingsFor returns the block's series matching ms, sorted by reference
// (which is label order), through the postings cache. No matchers match
// every series.
func (g *StoreGateway) postingsFor(ctx context.Context, lb *loadedBlock, ms []*labels.Matcher) ([]storage.SeriesRef, error) {
	key := postingsKey{lb.key, matchersKey(ms)}
	if refs, ok := g.postings.get(key); ok {
		return refs, nil
	}
	var (
		p   index.Postings
		err error
	)
	if len(ms) == 0 {
		n, v := index.AllPostingsKey()
		p, err = lb.ir.Postings(ctx, n, v)
	} else {
		p, err = tsdb.PostingsForMatchers(ctx, lb.ir, ms...)
	}
	if err != nil {
		return nil, fmt.Errorf("postings of block %s: %w", lb.key.id, err)
	}
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return nil, fmt.Errorf("postings of block %s: %w", lb.key.id, err)
	}
	g.postings.add(key, refs, int64(8*cap(refs)+len(key.matchers)+len(key.block.tenant)))
	return refs, nil
}

// matchersKey is a canonical form of a matcher set: the same matchers in
// any order give the same key.
func matchersKey(ms []*labels.Matcher) string {
	ss := make([]string, len(ms))
	for i, m := range ms {
		ss[i] = m.String()
	}
	slices.Sort(ss)
	return strings.Join(ss, "\x00")
}

// cloneAll copies strings that alias a block's memory-mapped index, so
// that they outlive it.
func cloneAll(ss []string) []string {
	for i, s := range ss {
		ss[i] = strings.Clone(s)
	}
	return ss
}
