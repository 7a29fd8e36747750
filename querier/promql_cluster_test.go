package querier_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"

	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/internal/clustertest"
)

const startTimestampsTest = "testdata/start_timestamps.test"

// TestPromQLConformance runs Prometheus' own PromQL test files through
// real components: each load goes through the distributor's push handler
// to 3 ingesters (each series on 2 of them, RF=2), each eval reads through
// the querier's fan-out, replica merge and chunk iterators. Every storage
// promqltest asks for (one per file and per clear) is a new tenant of one
// cluster. The engine is upstream's test engine (experimental syntax on),
// since the read path is under test here.
func TestPromQLConformance(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{
		Ingesters: 3, ReplicationFactor: 2,
		// The test files start at 1970 and span days: one head holds a
		// whole file (as a 24h block range does), and no head is cut into
		// a block and deleted by retention while a file runs.
		Ingester: func(cfg *ingester.Config) {
			cfg.BlockRangesPeriod = 24 * time.Hour
			cfg.RetentionPeriod = 1000 * 24 * time.Hour
		},
		// Files use UTF-8 metric and label names.
		Distributor: func(cfg *distributor.Config) { cfg.NameValidationScheme = distributor.SchemeUTF8 },
	})
	tenants := 0
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	skip := func(file string) string {
		if file == startTimestampsTest {
			return "needs start timestamps: remote-write 1.0 carries none and the ingester's TSDB stores none (they come with remote-write 2.0); TestPromQLStartTimestamps runs it over the fake ingesters with them stored"
		}
		return ""
	}
	promqltest.RunBuiltinTestsWithStorage(skipper{T: t, skip: skip}, engine, func(testing.TB) storage.Storage {
		tenants++
		return &clusterStorage{c: c, t: t, tenant: fmt.Sprintf("promqltest-%d", tenants)}
	})
}

// skipper skips the subtests skip gives a reason for.
type skipper struct {
	*testing.T
	skip func(name string) string
}

func (s skipper) Run(name string, f func(*testing.T)) bool {
	return s.T.Run(name, func(t *testing.T) {
		if reason := s.skip(name); reason != "" {
			t.Skip(reason)
		}
		f(t)
	})
}

// clusterStorage is a storage.Storage for promqltest: one tenant of the
// cluster, written through the distributor and read through the querier.
type clusterStorage struct {
	c      *clustertest.Cluster
	t      testing.TB
	tenant string
}

func (s *clusterStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.c.Queryable(s.t, s.tenant).Querier(mint, maxt)
}

func (s *clusterStorage) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("the querier reads samples, not chunks")
}

// Appender is storage.Appender (v1): promqltest appends with AppenderV2 only.
func (s *clusterStorage) Appender(context.Context) storage.Appender { return nil }

func (s *clusterStorage) AppenderV2(context.Context) storage.AppenderV2 {
	return &pushAppender{s: s, index: map[uint64]int{}}
}

func (s *clusterStorage) StartTime() (int64, error) { return math.MinInt64, nil }

func (s *clusterStorage) Close() error { return nil }

// pushAppender collects a load command's samples and pushes them on
// Commit, in batches of at most pushBatch samples, each series' samples in
// the order they were appended.
type pushAppender struct {
	s      *clusterStorage
	series []prompb.TimeSeries
	// index is the entry of series a labels hash appends to: a series
	// gets a new entry when it switches between floats and histograms,
	// so that the ingester appends them in time order.
	index map[uint64]int
}

const pushBatch = 20_000

func (a *pushAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	hist := h != nil || fh != nil
	k := ls.Hash()
	i, ok := a.index[k]
	if !ok || (len(a.series[i].Histograms) > 0) != hist {
		ts := prompb.TimeSeries{}
		ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		a.series = append(a.series, ts)
		i = len(a.series) - 1
		a.index[k] = i
	}
	switch {
	case h != nil:
		a.series[i].Histograms = append(a.series[i].Histograms, prompb.FromIntHistogram(t, h))
	case fh != nil:
		a.series[i].Histograms = append(a.series[i].Histograms, prompb.FromFloatHistogram(t, fh))
	default:
		a.series[i].Samples = append(a.series[i].Samples, prompb.Sample{Timestamp: t, Value: v})
	}
	return 0, nil
}

func (a *pushAppender) Commit() error {
	var batch []prompb.TimeSeries
	n := 0
	push := func() error {
		if len(batch) == 0 {
			return nil
		}
		code, body := a.s.c.TryPush(a.s.t, a.s.tenant, &prompb.WriteRequest{Timeseries: batch})
		batch, n = nil, 0
		if code != http.StatusNoContent && code != http.StatusOK {
			return fmt.Errorf("push: %d %s", code, body)
		}
		return nil
	}
	for _, ts := range a.series {
		for len(ts.Samples)+len(ts.Histograms) > 0 {
			part := ts
			part.Samples, part.Histograms = head(ts.Samples, pushBatch-n), head(ts.Histograms, pushBatch-n)
			ts.Samples, ts.Histograms = ts.Samples[len(part.Samples):], ts.Histograms[len(part.Histograms):]
			batch = append(batch, part)
			if n += len(part.Samples) + len(part.Histograms); n >= pushBatch {
				if err := push(); err != nil {
					return err
				}
			}
		}
	}
	return push()
}

func head[T any](s []T, n int) []T { return s[:min(len(s), n)] }

func (a *pushAppender) Rollback() error {
	a.series, a.index = nil, map[uint64]int{}
	return nil
}
