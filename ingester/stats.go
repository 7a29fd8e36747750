package ingester

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// Bounds of TSDBStatusRequest.limit. The querier asks for more entries than
// its client wants (it merges the top lists of every ingester), so the cap
// is above Prometheus' 10,000.
const (
	defaultTSDBStatusLimit = 10
	maxTSDBStatusLimit     = 100_000
)

// TSDBStatus returns the head statistics of r.tenant's TSDB as Prometheus'
// /api/v1/status/tsdb computes them (tsdb.Head.Stats by metric name, the
// head's chunk count), each top list cut to r.limit (default 10). A tenant
// without a TSDB gets zero counts and the time bounds of an empty head.
func (i *Ingester) TSDBStatus(ctx context.Context, r *ingesterpb.TSDBStatusRequest) (*ingesterpb.TSDBStatusResponse, error) {
	limit := int(r.GetLimit())
	switch {
	case limit < 0:
		return nil, statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, 0, fmt.Sprintf("tsdb status limit %d is negative", limit))
	case limit == 0:
		limit = defaultTSDBStatusLimit
	case limit > maxTSDBStatusLimit:
		return nil, statusError(ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, 0, fmt.Sprintf("tsdb status limit %d exceeds %d", limit, maxTSDBStatusLimit))
	}
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return nil, grpcError(err)
	}
	defer i.release(u)
	if u == nil {
		return &ingesterpb.TSDBStatusResponse{MinTimeMs: math.MaxInt64, MaxTimeMs: math.MinInt64}, nil
	}
	// The head caches these statistics for 30s per (label, limit).
	s := u.db.Head().Stats(labels.MetricName, limit)
	return &ingesterpb.TSDBStatusResponse{
		NumSeries:                   s.NumSeries,
		NumLabelPairs:               int64(s.IndexPostingStats.NumLabelPairs),
		ChunkCount:                  headChunks(u),
		MinTimeMs:                   s.MinTime,
		MaxTimeMs:                   s.MaxTime,
		SeriesCountByMetricName:     toTSDBStats(s.IndexPostingStats.CardinalityMetricsStats),
		LabelValueCountByLabelName:  toTSDBStats(s.IndexPostingStats.CardinalityLabelStats),
		MemoryInBytesByLabelName:    toTSDBStats(s.IndexPostingStats.LabelValueStats),
		SeriesCountByLabelValuePair: toTSDBStats(s.IndexPostingStats.LabelValuePairsStats),
	}, nil
}

// headChunks reads the head's chunk count from the TSDB's own gauge, as
// Prometheus' serveTSDBStatus does (the head has no accessor for it).
func headChunks(u *tenantDB) int64 {
	families, err := u.reg.Gather()
	if err != nil {
		return 0 // partial figures beat none; the gauge is the TSDB's own
	}
	for _, mf := range families {
		if mf.GetName() == "prometheus_tsdb_head_chunks" && len(mf.GetMetric()) > 0 {
			return int64(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

func toTSDBStats(stats []index.Stat) []*ingesterpb.TSDBStat {
	out := make([]*ingesterpb.TSDBStat, len(stats))
	for k, s := range stats {
		out[k] = &ingesterpb.TSDBStat{Name: s.Name, Value: s.Count}
	}
	return out
}

// UserStats returns r.tenant's ingestion rate on this ingester (samples per
// second appended, float and histogram, an EWMA over 15s ticks: stats_rate.go)
// and its head series count. Every sample here came through the push API:
// the rule ingestion rate is 0 until Strata has a ruler.
func (i *Ingester) UserStats(ctx context.Context, r *ingesterpb.UserStatsRequest) (*ingesterpb.UserStatsResponse, error) {
	u, err := i.acquire(ctx, r.GetTenant(), false)
	if err != nil {
		return nil, grpcError(err)
	}
	defer i.release(u)
	if u == nil {
		return &ingesterpb.UserStatsResponse{}, nil
	}
	rate := i.rates.rate(u.id, time.Now())
	return &ingesterpb.UserStatsResponse{
		IngestionRate:    rate,
		NumSeries:        u.db.Head().NumSeries(),
		ApiIngestionRate: rate,
	}, nil
}
