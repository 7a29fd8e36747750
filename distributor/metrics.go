package distributor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/strata-metrics/strata/tenant"
)

// metrics are the distributor's self-metrics. Label cardinality: tenant
// (at most -metrics.max-tenant-labels values plus tenant.OtherLabel: a
// tenant.LabelCap decides, and deletes an idle tenant's series), reason
// (the stable ids of errors.go, fixed), ingester (instance ids of the ring)
// and class (five values).
type metrics struct {
	receivedSamples   *prometheus.CounterVec
	receivedExemplars *prometheus.CounterVec
	receivedMetadata  *prometheus.CounterVec
	discardedSamples  *prometheus.CounterVec
	discardedExemplar *prometheus.CounterVec
	discardedMetadata *prometheus.CounterVec
	rateLimitedPushes *prometheus.CounterVec
	rejectedRequests  *prometheus.CounterVec

	otlpTranslationWarnings *prometheus.CounterVec

	pushDuration     *prometheus.HistogramVec
	compressedSize   prometheus.Histogram
	decompressedSize prometheus.Histogram

	ingesterPushDuration prometheus.Histogram
	ingesterPushFailures *prometheus.CounterVec
	inflightPushes       prometheus.Gauge
	inflightPushBytes    prometheus.Gauge
}

// Protocols of the rejected_requests metric.
const (
	protoRW   = "remote_write" // before the version is known
	protoRW2  = "remote_write_2"
	protoOTLP = "otlp"
)

// newMetrics registers the distributor's metrics; tl learns the vectors
// labelled by tenant.
func newMetrics(reg prometheus.Registerer, tl *tenant.LabelCap) *metrics {
	f := promauto.With(reg)
	sizes := prometheus.ExponentialBuckets(1<<10, 4, 10) // 1 KiB .. 256 MiB
	m := &metrics{
		receivedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_received_samples_total",
			Help: "Float and histogram samples accepted after validation and sent to ingesters.",
		}, []string{"tenant"}),
		receivedExemplars: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_received_exemplars_total",
			Help: "Exemplars accepted after validation and sent to ingesters.",
		}, []string{"tenant"}),
		receivedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_received_metadata_total",
			Help: "Metric metadata entries accepted after validation and sent to ingesters.",
		}, []string{"tenant"}),
		discardedSamples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_discarded_samples_total",
			Help: "Float and histogram samples dropped by validation or a limit, by the stable id of the rule; a push refused unread by the ingestion rate limit counts the samples of the tenant's last refused push.",
		}, []string{"tenant", "reason"}),
		discardedExemplar: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_discarded_exemplars_total",
			Help: "Exemplars dropped by validation, by the stable id of the rule.",
		}, []string{"tenant", "reason"}),
		discardedMetadata: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_discarded_metadata_total",
			Help: "Metric metadata entries dropped by validation, by the stable id of the rule.",
		}, []string{"tenant", "reason"}),
		rateLimitedPushes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_rate_limited_pushes_total",
			Help: "Pushes refused by a rate limit (429), by reason: ingestion_rate (refused after decoding and validation), ingestion_rate_unread (refused before the body was read, as the tenant's last refused push does not fit yet) or request_rate (refused by the request rate limit, before the body was read) or inflight_bytes (refused after reading, as the process held -distributor.max-inflight-push-bytes of pushes).",
		}, []string{"tenant", "reason"}),
		rejectedRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_rejected_requests_total",
			Help: "Push requests refused whole before validation, by protocol (remote_write, remote_write_2, otlp) and the stable id of the error (the bracketed id of the answer).",
		}, []string{"protocol", "reason"}),
		otlpTranslationWarnings: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_otlp_translation_warnings_total",
			Help: "Warnings of Prometheus' OTLP translation (data stored, but not as sent: empty data points dropped, attribute names that collide once sanitised, ...), by its category.",
		}, []string{"category"}),
		pushDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "strata_distributor_push_duration_seconds",
			Help:                        "Time to answer one remote-write request, by HTTP status code.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"code"}),
		compressedSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_distributor_push_compressed_body_bytes",
			Help:    "Size of remote-write bodies as received (snappy-compressed).",
			Buckets: sizes,
		}),
		decompressedSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_distributor_push_decompressed_body_bytes",
			Help:    "Size of remote-write bodies after snappy decompression.",
			Buckets: sizes,
		}),
		ingesterPushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "strata_distributor_ingester_push_duration_seconds",
			Help:                        "Time of one gRPC Push to one ingester, failed or not.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
		ingesterPushFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_distributor_ingester_push_failures_total",
			Help: "Pushes to an ingester that failed, by ingester id and class (bad_input, limited, unavailable, timeout, error).",
		}, []string{"ingester", "class"}),
		inflightPushBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_distributor_inflight_push_bytes",
			Help: "Bytes held by pushes being served: bodies compressed and decompressed, and what decoding made of them (-distributor.max-inflight-push-bytes bounds it).",
		}),
		inflightPushes: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_distributor_inflight_pushes",
			Help: "gRPC pushes to ingesters in flight, including those still running after their request was answered at quorum.",
		}),
	}
	tl.Track(m.receivedSamples, m.receivedExemplars, m.receivedMetadata, m.discardedSamples, m.discardedExemplar, m.discardedMetadata, m.rateLimitedPushes)
	return m
}
