package querier

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/strata-metrics/strata/promapi"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// Per-tenant usage: GET /api/v1/status/tsdb (Prometheus' head statistics)
// and GET /api/v1/user_stats (Cortex's and Mimir's ingestion rate and series
// count), both merged from every ingester of the ring's read set.
//
// Replication. Each series lives on RF ingesters, so the sum of the
// ingesters' series counts counts it RF times; like Mimir, the querier
// divides by RF. The divisor is min(RF, ingesters that answered): a ring
// smaller than RF keeps one copy per ingester, and when a replica fails
// (within the read set's tolerance) RF-1 copies answered. The result is
// exact when every series has all its copies among the answers (one
// ingester; RF ingesters; or many ingesters all answering) and an
// approximation otherwise (an ingester down in a ring larger than RF
// leaves some series with fewer counted copies; a series that was just
// created or whose push failed on one replica has fewer copies).
//
// user_stats is served by the querier rather than the distributor, as
// Mimir does: it is a read of every ingester, and the querier owns that
// path (the read set, its failure tolerance and error classes, fanOut);
// the distributor only knows the write path, per series token.

// maxTSDBStatusLimit is Prometheus' cap of the limit parameter.
const maxTSDBStatusLimit = 10000

// tsdbStatusIngesterLimit is how many entries of each top list the querier
// asks of every ingester for a client's limit: more than limit, because an
// entry that is in no ingester's top limit can still be in the merged top.
func tsdbStatusIngesterLimit(limit int) int32 {
	return int32(min(max(10*limit, 1000), 100_000))
}

// tsdbStat, headStats and tsdbStatus are Prometheus' TSDBStat, HeadStats and
// TSDBStatus (web/api/v1), field for field.
type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

type tsdbStatus struct {
	HeadStats                   headStats  `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
}

// tsdbStatus serves /api/v1/status/tsdb: the limit parameter as Prometheus
// parses it (default 10, 1 to 10,000), then every ingester's head
// statistics merged by mergeTSDBStatus.
func (q *Querier) tsdbStatus(r *http.Request, tenantID string) promapi.Result {
	limit := 10
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return badData(errors.New("limit must be a positive number"))
		}
		if limit > maxTSDBStatusLimit {
			return badData(fmt.Errorf("limit must not exceed %d", maxTSDBStatusLimit))
		}
	}
	req := &ingesterpb.TSDBStatusRequest{Tenant: tenantID, Limit: tsdbStatusIngesterLimit(limit)}
	resps, warns, err := fanOut(r.Context(), q.fanout, "TSDBStatus", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) (*ingesterpb.TSDBStatusResponse, error) {
		return c.TSDBStatus(ctx, req)
	})
	if err != nil {
		return promapi.Result{Err: classify(err, promapi.ErrorInternal)}
	}
	return promapi.Result{Data: mergeTSDBStatus(resps, q.copies(len(resps)), limit), Warnings: warns}
}

// mergeTSDBStatus merges the ingesters' head statistics, each series stored
// copies times (see the top of this file):
//   - series counts (numSeries, seriesCountByMetricName,
//     seriesCountByLabelValuePair), chunkCount and memoryInBytesByLabelName
//     (bytes of label values times their series) are summed and divided by
//     copies;
//   - distinct counts (numLabelPairs, labelValueCountByLabelName) are not
//     additive: a value on several ingesters counts once. The sum divided by
//     copies is exact when each ingester holds every series or when values
//     are unique per series (the cardinality explosions this page is read
//     for), and too high by up to ingesters/copies for a value shared by
//     series on every ingester; it is raised to the largest single
//     ingester's count, a lower bound;
//   - minTime and maxTime are the extremes.
//
// Each list is then sorted by value, largest first (ties by name, where
// Prometheus leaves them in map order), and cut to limit.
func mergeTSDBStatus(resps []*ingesterpb.TSDBStatusResponse, copies, limit int) *tsdbStatus {
	var (
		numSeries, chunks uint64
		pairs             mergedCount
		out               = &tsdbStatus{HeadStats: headStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64}}
		byMetric          = map[string]uint64{}
		byPair            = map[string]uint64{}
		memory            = map[string]uint64{}
		values            = map[string]*mergedCount{}
	)
	for _, r := range resps {
		numSeries += r.GetNumSeries()
		chunks += uint64(max(r.GetChunkCount(), 0))
		pairs.add(uint64(max(r.GetNumLabelPairs(), 0)))
		out.HeadStats.MinTime = min(out.HeadStats.MinTime, r.GetMinTimeMs())
		out.HeadStats.MaxTime = max(out.HeadStats.MaxTime, r.GetMaxTimeMs())
		sumStats(byMetric, r.GetSeriesCountByMetricName())
		sumStats(byPair, r.GetSeriesCountByLabelValuePair())
		sumStats(memory, r.GetMemoryInBytesByLabelName())
		for _, s := range r.GetLabelValueCountByLabelName() {
			c := values[s.GetName()]
			if c == nil {
				c = &mergedCount{}
				values[s.GetName()] = c
			}
			c.add(s.GetValue())
		}
	}
	out.HeadStats.NumSeries = perCopy(numSeries, copies)
	out.HeadStats.ChunkCount = int64(perCopy(chunks, copies))
	out.HeadStats.NumLabelPairs = int(pairs.distinct(copies))
	out.SeriesCountByMetricName = topStats(byMetric, copies, limit)
	out.SeriesCountByLabelValuePair = topStats(byPair, copies, limit)
	out.MemoryInBytesByLabelName = topStats(memory, copies, limit)
	distinct := make(map[string]uint64, len(values))
	for name, c := range values {
		distinct[name] = c.distinct(copies)
	}
	out.LabelValueCountByLabelName = topStats(distinct, 1, limit)
	return out
}

// mergedCount is a distinct count reported by several ingesters.
type mergedCount struct{ sum, largest uint64 }

func (c *mergedCount) add(v uint64) {
	c.sum += v
	c.largest = max(c.largest, v)
}

func (c *mergedCount) distinct(copies int) uint64 {
	return max(perCopy(c.sum, copies), c.largest)
}

func sumStats(dst map[string]uint64, stats []*ingesterpb.TSDBStat) {
	for _, s := range stats {
		dst[s.GetName()] += s.GetValue()
	}
}

// perCopy divides a sum over copies, rounding to the nearest.
func perCopy(sum uint64, copies int) uint64 {
	if copies <= 1 {
		return sum
	}
	return (sum + uint64(copies)/2) / uint64(copies)
}

// topStats returns m's entries, each divided by copies, largest first,
// at most limit of them; never nil (Prometheus answers [] for none).
func topStats(m map[string]uint64, copies, limit int) []tsdbStat {
	out := make([]tsdbStat, 0, len(m))
	for name, v := range m {
		out = append(out, tsdbStat{Name: name, Value: perCopy(v, copies)})
	}
	slices.SortFunc(out, func(a, b tsdbStat) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// userStats is Cortex's and Mimir's UserStats, field for field (the two
// rate names are capitalised there too).
type userStats struct {
	IngestionRate     float64 `json:"ingestionRate"`
	NumSeries         uint64  `json:"numSeries"`
	APIIngestionRate  float64 `json:"APIIngestionRate"`
	RuleIngestionRate float64 `json:"RuleIngestionRate"`
}

// userStatsHandler serves /api/v1/user_stats. As in Cortex and Mimir the
// body of a success is the bare object, without Prometheus' envelope;
// errors are Prometheus' error JSON, as on every other route here.
func (q *Querier) userStatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenantID, err := q.tenants.FromHTTP(r)
		if err != nil {
			promapi.RespondError(w, q.log, promapi.TenantError(err), nil)
			return
		}
		stats, err := q.userStats(r.Context(), tenantID)
		if err != nil {
			promapi.RespondError(w, q.log, classify(err, promapi.ErrorInternal), nil)
			return
		}
		b, err := json.Marshal(stats)
		if err != nil {
			promapi.RespondError(w, q.log, &promapi.Error{Type: promapi.ErrorInternal, Err: fmt.Errorf("encode user stats: %w", err)}, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if n, err := w.Write(b); err != nil {
			q.log.Debug("write response", "url", r.URL, "bytes_written", n, "err", err)
		}
	})
}

// userStats sums every ingester's figures for tenantID and divides them by
// the copies of each series (see the top of this file): each sample is
// appended on RF ingesters too.
func (q *Querier) userStats(ctx context.Context, tenantID string) (*userStats, error) {
	req := &ingesterpb.UserStatsRequest{Tenant: tenantID}
	resps, _, err := fanOut(ctx, q.fanout, "UserStats", func(ctx context.Context, c ingesterpb.IngesterClient, _ int) (*ingesterpb.UserStatsResponse, error) {
		return c.UserStats(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	var (
		s         userStats
		numSeries uint64
	)
	for _, r := range resps {
		s.IngestionRate += r.GetIngestionRate()
		s.APIIngestionRate += r.GetApiIngestionRate()
		s.RuleIngestionRate += r.GetRuleIngestionRate()
		numSeries += r.GetNumSeries()
	}
	copies := q.copies(len(resps))
	s.NumSeries = perCopy(numSeries, copies)
	s.IngestionRate /= float64(copies)
	s.APIIngestionRate /= float64(copies)
	s.RuleIngestionRate /= float64(copies)
	return &s, nil
}

// replicationFactorer is the part of *ring.Ring that tells the configured
// number of copies.
type replicationFactorer interface {
	ReplicationFactor() int
}

// copies is how many copies of each series the answers of answered
// ingesters hold: min(RF, answered), at least 1. A ring that does not tell
// its RF counts as RF 1.
func (q *Querier) copies(answered int) int {
	rf := 1
	if r, ok := q.fanout.ring.(replicationFactorer); ok {
		rf = r.ReplicationFactor()
	}
	return max(1, min(rf, answered))
}
