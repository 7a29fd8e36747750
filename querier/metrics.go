package querier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-metrics/strata/tenant"
)

// metrics are the querier's own; the PromQL engine adds prometheus_engine_*.
// Label cardinality: tenant (at most -metrics.max-tenant-labels values plus
// tenant.OtherLabel, decided by a tenant.LabelCap), reason (the stable ids
// of limits.go), rpc and outcome (fixed).
type metrics struct {
	rejected        *prometheus.CounterVec   // tenant, reason
	requests        *prometheus.CounterVec   // rpc, outcome
	stragglers      *prometheus.CounterVec   // rpc, outcome (straggler*)
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

// Outcomes of a straggler: an ingester still running once the others'
// answers covered every series.
const (
	stragglerAnswered = "answered" // ended within the grace (success or error)
	stragglerCanceled = "canceled" // canceled when the grace ran out
)

// newMetrics registers the querier's metrics; tl learns the vectors
// labelled by tenant.
func newMetrics(reg prometheus.Registerer, tl *tenant.LabelCap) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_querier_queries_rejected_total",
			Help: "Queries and metadata requests refused or ended by a per-tenant query limit, by tenant and reason (the stable id ending the error message).",
		}, []string{"tenant", "reason"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_querier_ingester_requests_total",
			Help: "Requests from the querier to ingesters, by RPC and outcome (success, error, canceled).",
		}, []string{"rpc", "outcome"}),
		stragglers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_querier_ingester_stragglers_total",
			Help: "Ingester requests still running when the other ingesters' answers already covered every series, by RPC and outcome: answered within the grace (-querier.ingester-straggler-grace) or canceled when it ran out (a hung or slow ingester the read did without).",
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
	tl.Track(m.rejected)
	return m
}
