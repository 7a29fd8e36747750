package querier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the querier's own; the PromQL engine adds prometheus_engine_*.
type metrics struct {
	requests        *prometheus.CounterVec   // rpc, outcome
	requestDuration *prometheus.HistogramVec // rpc
	seriesFetched   prometheus.Histogram
	chunksFetched   prometheus.Histogram
	bytesFetched    prometheus.Histogram
	inflight        prometheus.Gauge
	queued          prometheus.Gauge
}

// Outcomes of one ingester request.
const (
	outcomeSuccess  = "success"
	outcomeError    = "error"
	outcomeCanceled = "canceled" // the query ended or had already failed
)

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_querier_ingester_requests_total",
			Help: "Requests from the querier to ingesters, by RPC and outcome (success, error, canceled).",
		}, []string{"rpc", "outcome"}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "strata_querier_ingester_request_duration_seconds",
			Help:                        "Time of one querier request to one ingester, streams read to the end, by RPC.",
			Buckets:                     prometheus.ExponentialBuckets(0.0005, 4, 10),
			NativeHistogramBucketFactor: 1.1,
		}, []string{"rpc"}),
		seriesFetched: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_querier_series_fetched",
			Help:                        "Series received from all ingesters for one selector, replicas counted before they are merged.",
			Buckets:                     prometheus.ExponentialBuckets(1, 4, 12),
			NativeHistogramBucketFactor: 1.1,
		}),
		chunksFetched: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_querier_chunks_fetched",
			Help:                        "Chunks received from all ingesters for one selector, replicas counted before they are merged.",
			Buckets:                     prometheus.ExponentialBuckets(1, 4, 14),
			NativeHistogramBucketFactor: 1.1,
		}),
		bytesFetched: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_querier_chunks_fetched_bytes",
			Help:                        "Compressed chunk bytes received from all ingesters for one selector.",
			Buckets:                     prometheus.ExponentialBuckets(1024, 4, 12),
			NativeHistogramBucketFactor: 1.1,
		}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_querier_queries_inflight",
			Help: "PromQL queries being evaluated; at most -querier.max-concurrent.",
		}),
		queued: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_querier_queries_queued",
			Help: "PromQL queries waiting for a free slot (-querier.max-concurrent).",
		}),
	}
}
