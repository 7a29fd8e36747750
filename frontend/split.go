package frontend

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/sync/errgroup"

	"github.com/strata-metrics/strata/promapi"
)

// rangeRequest is a range query the frontend splits.
type rangeRequest struct {
	orig           *http.Request
	tenant, path   string
	query          string     // @ start() and @ end() made absolute
	form           url.Values // the client's parameters, sent with each leg
	start, end     int64      // milliseconds
	step           int64      // milliseconds
	interval       int64      // the split interval for this step; 0: no split
	useCache       bool
	cacheEnd       int64 // the last point of the grid that may be cached
	lookback       string
	maxNegOffsetMs int64
	latestAt       int64
	parallelism    int // legs evaluated at once: max_query_parallelism
}

// maxLegs is the most legs one query is split into; a query that would
// make more (a step of a day over decades) goes whole, so that one
// request cannot start thousands of cache reads.
const maxLegs = 1000

// parseRange reads a query_range request the frontend can split; ok is
// false for one it sends whole: parameters the querier refuses (it words
// the error), a range longer than the queriers' or the tenant's
// max_query_length (each leg would pass it; the querier refuses the
// whole), a limit (series cut per leg would differ from the whole),
// stats (the legs' statistics do not add up), a step finer than a
// millisecond, or range() in a duration (each leg's range differs).
func (f *Frontend) parseRange(r *http.Request, tenantID string) (*rangeRequest, bool) {
	if r.Form.Get("limit") != "" || r.Form.Get("stats") != "" {
		return nil, false
	}
	start, end, step, perr := promapi.ParseRange(r)
	if perr != nil || step%1e6 != 0 {
		return nil, false
	}
	lim := f.limits.For(tenantID)
	if l := end.Sub(start); (f.maxQueryLength > 0 && l > f.maxQueryLength) || (lim.MaxQueryLength > 0 && l > lim.MaxQueryLength) {
		return nil, false
	}
	expr, err := f.parser.ParseExpr(r.Form.Get("query"))
	if err != nil {
		return nil, false
	}
	rr := &rangeRequest{
		orig: r, tenant: tenantID, path: r.URL.Path, form: r.Form, query: r.Form.Get("query"),
		start: timestamp.FromTime(start), end: timestamp.FromTime(end), step: step.Milliseconds(),
		lookback: r.Form.Get("lookback_delta"), latestAt: math.MinInt64,
	}
	if !rr.inspect(expr) {
		return nil, false
	}
	if interval := f.cfg.SplitInterval.Milliseconds(); interval > 0 {
		// A step longer than the interval would make one leg per point:
		// legs of whole multiples of the interval instead.
		rr.interval = interval * max(1, (rr.step+interval-1)/interval)
		if (rr.end-rr.start)/rr.interval+1 > maxLegs {
			return nil, false
		}
	}
	rr.parallelism = max(1, lim.MaxQueryParallelism)
	noStore := strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Cache-Control"), ",")), "no-store")
	// Samples as old as the tenant's out-of-order window may still arrive:
	// nothing that recent is cached, whatever max_cache_freshness says.
	ooo := f.oooWindow
	if lim.OutOfOrderTimeWindow != nil {
		ooo = *lim.OutOfOrderTimeWindow
	}
	freshBound := timestamp.FromTime(f.now()) - max(lim.MaxCacheFreshness, ooo).Milliseconds() - rr.maxNegOffsetMs
	rr.useCache = f.cache != nil && !noStore && rr.latestAt <= freshBound && rr.start <= freshBound
	if rr.useCache {
		// The last grid point at or before the bound.
		rr.cacheEnd = rr.start + floorDiv(freshBound-rr.start, rr.step)*rr.step
	}
	return rr, true
}

// inspect makes @ start() and @ end() absolute in rr.query and notes the
// latest @ time and the largest negative offset; false for range() in a
// duration expression.
func (rr *rangeRequest) inspect(expr parser.Expr) bool {
	rewritten, ok := false, true
	// negAhead is how far ahead of its evaluation time a node reads
	// through negative offsets: its own and those of the subqueries it
	// sits in (they add up).
	negAhead := func(offset int64, path []parser.Node) int64 {
		ahead := max(0, -offset)
		for _, p := range path {
			if sq, isSub := p.(*parser.SubqueryExpr); isSub {
				ahead += max(0, -sq.OriginalOffset.Milliseconds())
			}
		}
		return ahead
	}
	var path []parser.Node
	at := func(ts **int64, soe *parser.ItemType, offset int64, exprs ...*parser.DurationExpr) {
		switch *soe {
		case parser.START:
			*ts, *soe, rewritten = &rr.start, 0, true
		case parser.END:
			*ts, *soe, rewritten = &rr.end, 0, true
		}
		if *ts != nil {
			rr.latestAt = max(rr.latestAt, **ts)
		}
		rr.maxNegOffsetMs = max(rr.maxNegOffsetMs, negAhead(offset, path))
		for _, e := range exprs {
			ok = ok && !hasRange(e)
		}
	}
	parser.Inspect(expr, func(node parser.Node, p []parser.Node) error {
		path = p
		switch n := node.(type) {
		case *parser.VectorSelector:
			at(&n.Timestamp, &n.StartOrEnd, n.OriginalOffset.Milliseconds(), n.OriginalOffsetExpr)
		case *parser.MatrixSelector:
			ok = ok && !hasRange(n.RangeExpr)
		case *parser.SubqueryExpr:
			at(&n.Timestamp, &n.StartOrEnd, n.OriginalOffset.Milliseconds(), n.OriginalOffsetExpr, n.RangeExpr, n.StepExpr)
		case *parser.DurationExpr:
			ok = ok && !hasRange(n)
		}
		return nil
	})
	if rewritten {
		rr.query = expr.String()
	}
	return ok
}

// hasRange reports whether a duration expression uses range(), the
// query's range, which differs per leg.
func hasRange(e parser.Expr) bool {
	d, ok := e.(*parser.DurationExpr)
	if !ok || d == nil {
		return false
	}
	return d.Op == parser.RANGE || hasRange(d.LHS) || hasRange(d.RHS)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// splitLegs cuts [start, end] into legs that each lie within one
// interval [k·interval, (k+1)·interval), every leg starting on the
// request's grid (start + n·step), so that the legs evaluate exactly the
// points the whole query would. interval 0: one leg.
func splitLegs(start, end, step, interval int64) [][2]int64 {
	if interval <= 0 {
		return [][2]int64{{start, end}}
	}
	legs := make([][2]int64, 0, (end-start)/interval+2)
	for s := start; s <= end; {
		boundary := (floorDiv(s, interval) + 1) * interval
		e := min(s+((boundary-1-s)/step)*step, end)
		legs = append(legs, [2]int64{s, e})
		s = e + step
	}
	return legs
}

// evaluate answers rr: its legs in parallel (each from the cache where it
// can), merged. The first leg to fail fails the query; the others are
// canceled.
func (f *Frontend) evaluate(ctx context.Context, rr *rangeRequest) (*matrix, error) {
	legs := splitLegs(rr.start, rr.end, rr.step, rr.interval)
	f.m.legs.Add(float64(len(legs)))
	out := make([]*matrix, len(legs))
	g, ctx := errgroup.WithContext(ctx)
	// At most the tenant's max_query_parallelism legs at once, cache
	// reads included.
	g.SetLimit(rr.parallelism)
	for i, leg := range legs {
		g.Go(func() error {
			m, err := f.evalLeg(ctx, rr, leg[0], leg[1])
			out[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return mergeMatrices(out), nil
}

// evalLeg answers the points [start, end] of one leg: from the cache what
// it holds, from the queriers the rest; what is new and older than the
// freshness bound joins the cache.
func (f *Frontend) evalLeg(ctx context.Context, rr *rangeRequest, start, end int64) (*matrix, error) {
	if !rr.useCache {
		return f.fetch(ctx, rr, start, end)
	}
	var bucket int64
	if rr.interval > 0 {
		bucket = floorDiv(start, rr.interval)
	}
	key, full := cacheKey(rr.tenant, rr.query, rr.step, rr.start-floorDiv(rr.start, rr.step)*rr.step, rr.lookback, rr.interval, bucket)
	cached := f.cachedExtents(ctx, key, full)
	var parts []*matrix
	var used []extent // the cached extents the answer reads, decoded
	for _, e := range cached {
		if e.end < start || e.start > end {
			continue
		}
		m, err := decodeMatrix(e.body)
		if err != nil {
			f.m.cacheErrors.WithLabelValues(f.cacheBackend, "decode").Inc()
			cached, parts, used = nil, nil, nil
			break
		}
		parts = append(parts, m)
		used = append(used, e)
	}
	missing := gaps(used, start, end, rr.step)
	switch {
	case len(missing) == 0:
		f.m.cacheLookups.WithLabelValues(f.cacheBackend, "hit").Inc()
	case len(used) > 0:
		f.m.cacheLookups.WithLabelValues(f.cacheBackend, "partial").Inc()
	default:
		f.m.cacheLookups.WithLabelValues(f.cacheBackend, "miss").Inc()
	}
	var added []extent
	for _, g := range missing {
		m, err := f.fetch(ctx, rr, g[0], g[1])
		if err != nil {
			return nil, err
		}
		parts = append(parts, m)
		storeEnd := min(g[1], rr.cacheEnd)
		if g[0] > storeEnd || len(m.warnings) > 0 {
			continue
		}
		body, err := encodeBody(m.clip(g[0], storeEnd))
		if err != nil {
			return nil, err
		}
		added = append(added, extent{start: g[0], end: storeEnd, body: body})
	}
	if len(added) > 0 {
		f.storeExtents(ctx, rr.tenant, key, full, append(cached, added...), rr.step)
	}
	return mergeMatrices(parts).clip(start, end), nil
}

func (f *Frontend) cachedExtents(ctx context.Context, key, full string) []extent {
	v, ok, err := f.cache.Get(ctx, key)
	if err != nil {
		f.m.cacheErrors.WithLabelValues(f.cacheBackend, "get").Inc()
		f.log.Debug("results cache get", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	f.m.cacheRead.WithLabelValues(f.cacheBackend).Add(float64(len(v)))
	es, ok, err := decodeExtents(full, v)
	if err != nil {
		f.m.cacheErrors.WithLabelValues(f.cacheBackend, "decode").Inc()
		return nil
	}
	if !ok {
		return nil // another key with the same hash
	}
	return es
}

func (f *Frontend) storeExtents(ctx context.Context, tenantID, key, full string, es []extent, step int64) {
	joined, err := joinExtents(es, step)
	if err != nil {
		f.m.cacheErrors.WithLabelValues(f.cacheBackend, "decode").Inc()
		return
	}
	v := encodeExtents(full, joined)
	if err := f.cache.Set(ctx, key, v, f.limits.For(tenantID).ResultsCacheTTL); err != nil {
		f.m.cacheErrors.WithLabelValues(f.cacheBackend, "set").Inc()
		f.log.Debug("results cache set", "err", err)
		return
	}
	f.m.cacheWritten.WithLabelValues(f.cacheBackend).Add(float64(len(v)))
}

// encodeBody is a matrix as the cache keeps it: the API's JSON.
func encodeBody(m *matrix) ([]byte, error) {
	var buf bytes.Buffer
	if err := m.encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
