package blockupload

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	started, finished prometheus.Counter
	failed            *prometheus.CounterVec
	bytes             prometheus.Counter
	samples           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		started: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_block_uploads_started_total",
			Help: "Block uploads started (a resumed upload counts once).",
		}),
		finished: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_block_uploads_finished_total",
			Help: "Block uploads verified and made visible.",
		}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_block_uploads_failed_total",
			Help: "Block upload requests refused or failed, by reason (the error id, or internal).",
		}, []string{"reason"}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_block_upload_received_bytes_total",
			Help: "Bytes of block files received and stored.",
		}),
		samples: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_block_upload_verified_samples_total",
			Help: "Samples read while verifying uploaded blocks that were made visible.",
		}),
	}
	for _, r := range []string{ReasonDisabled, ReasonBadMeta, ReasonOtherTenant, ReasonBadFile, ReasonTooLarge, ReasonCorrupt, ReasonNotStarted, ReasonExists, ReasonInProgress, ReasonBusy, reasonInternal} {
		m.failed.WithLabelValues(r)
	}
	return m
}
