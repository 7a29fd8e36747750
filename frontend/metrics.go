package frontend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	queries        *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	legs           prometheus.Counter
	legsInFlight   prometheus.Gauge
	downstream     *prometheus.CounterVec
	cacheLookups   *prometheus.CounterVec
	cacheErrors    *prometheus.CounterVec
	cacheTooLarge  *prometheus.CounterVec
	cacheRead      *prometheus.CounterVec
	cacheWritten   *prometheus.CounterVec
	cacheSize      prometheus.Gauge
	cacheItems     prometheus.Gauge
	cacheEvictions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_query_range_requests_total",
			Help: "Range queries the query-frontend answered, by how: split (split and/or cached) or passthrough (sent whole: limit or stats asked, a query that does not parse, range() in a duration).",
		}, []string{"path"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "strata_frontend_query_range_duration_seconds",
			Help:                        "Time the query-frontend took to answer a range query, by path.",
			Buckets:                     prometheus.ExponentialBuckets(0.001, 4, 9),
			NativeHistogramBucketFactor: 1.1,
		}, []string{"path"}),
		legs: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_frontend_split_legs_total",
			Help: "Legs range queries were split into (cached or not).",
		}),
		legsInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_frontend_downstream_requests_in_flight",
			Help: "Leg requests to the queriers in flight, every tenant.",
		}),
		downstream: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_downstream_requests_total",
			Help: "Leg requests the query-frontend sent to the queriers, by status code of the answer.",
		}, []string{"status_code"}),
		cacheLookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_lookups_total",
			Help: "Results-cache lookups of a leg: hit (answered from the cache alone), partial (the cache held part of it), miss.",
		}, []string{"backend", "result"}),
		cacheErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_errors_total",
			Help: "Results-cache operations that failed (get, set) or read a corrupt entry (decode); each is treated as a miss.",
		}, []string{"backend", "operation"}),
		cacheTooLarge: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_skipped_too_large_total",
			Help: "Entries not written because they exceed the backend's item size (memcached) or a quarter of the cache (embedded).",
		}, []string{"backend"}),
		cacheRead: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_read_bytes_total",
			Help: "Bytes of entries read from the results cache.",
		}, []string{"backend"}),
		cacheWritten: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_written_bytes_total",
			Help: "Bytes of entries written to the results cache.",
		}, []string{"backend"}),
		cacheSize: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_frontend_results_cache_embedded_size_bytes",
			Help: "Bytes the embedded results cache holds, bookkeeping included.",
		}),
		cacheItems: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_frontend_results_cache_embedded_items",
			Help: "Entries in the embedded results cache.",
		}),
		cacheEvictions: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_frontend_results_cache_embedded_evictions_total",
			Help: "Entries the embedded results cache evicted to make room.",
		}),
	}
}
