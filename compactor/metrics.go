package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons of strata_compactor_blocks_marked_no_compact_total.
const (
	// noCompactDownload: an object of the block is missing or its size is
	// not meta.json's (a truncated upload, a damaged object).
	noCompactDownload = "download"
	// noCompactOpen: Prometheus cannot open the block (bad index, bad
	// chunk segment header).
	noCompactOpen = "open"
	// noCompactRead: reading its series or chunks failed while compacting.
	noCompactRead = "read"
)

// Reasons of strata_compactor_blocks_marked_for_deletion_total and
// strata_compactor_blocks_deleted_total.
const (
	reasonCompaction = "compaction"
	reasonRetention  = "retention"
	reasonDamaged    = "damaged-copy"
	reasonMarked     = "deletion-mark"
	reasonPartial    = "partial"
)

type metrics struct {
	runsStarted, runsCompleted, runsFailed prometheus.Counter
	lastSuccess                            prometheus.Gauge
	runDuration                            prometheus.Histogram
	cleanups, cleanupFailures              prometheus.Counter
	tenantsOwned                           prometheus.Gauge
	tenantFailures                         prometheus.Counter

	compactions        *prometheus.CounterVec
	compactionFailures prometheus.Counter
	blocksCompacted    prometheus.Counter
	inputBytes         prometheus.Counter
	outputBytes        prometheus.Counter

	noCompact        *prometheus.CounterVec
	markedDeletion   *prometheus.CounterVec
	deleted          *prometheus.CounterVec
	deletionFailures prometheus.Counter
	partialBlocks    prometheus.Gauge
	corruptMeta      prometheus.Gauge

	indexUpdates, indexUpdateFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, ranges DurationList) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		runsStarted: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_runs_started_total", Help: "Compaction runs started (each covers every tenant this compactor owns).",
		}),
		runsCompleted: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_runs_completed_total", Help: "Compaction runs that finished with every owned tenant processed.",
		}),
		runsFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_runs_failed_total", Help: "Compaction runs in which at least one tenant failed (see the log); the next run retries.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_compactor_last_successful_run_timestamp_seconds", Help: "When the last compaction run that completed without failure ended, Unix seconds.",
		}),
		runDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_compactor_run_duration_seconds", Help: "Duration of compaction runs.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8), // 1s .. 4.5h
		}),
		cleanups: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_cleanups_total", Help: "Cleanup runs (bucket index, retention, deletions) without compaction.",
		}),
		cleanupFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_cleanup_failures_total", Help: "Cleanup runs in which at least one tenant failed.",
		}),
		tenantsOwned: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_compactor_tenants_owned", Help: "Tenants this compactor owns in the compactor ring, at the last run.",
		}),
		tenantFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_tenant_failures_total", Help: "Times processing one tenant in a run failed.",
		}),
		compactions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_compactions_total", Help: "Groups of blocks merged into one, by block range of the result.",
		}, []string{"range"}),
		compactionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_compaction_failures_total", Help: "Groups whose compaction failed for a reason other than a bad block (bucket or disk errors); retried next run.",
		}),
		blocksCompacted: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_compacted_total", Help: "Blocks merged into others (the inputs of compactions).",
		}),
		inputBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_input_bytes_total", Help: "Bytes of the blocks merged by compactions.",
		}),
		outputBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_output_bytes_total", Help: "Bytes of the blocks compactions wrote.",
		}),
		noCompact: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_marked_no_compact_total", Help: "Blocks the compactor could not read and marked no-compact, by reason: download (object missing or of the wrong size), open (unreadable index or chunk header), read (corrupt series or chunks).",
		}, []string{"reason"}),
		markedDeletion: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_marked_for_deletion_total", Help: "Blocks marked for deletion, by reason: compaction (merged into another), retention, or damaged-copy (an unreadable ingester copy of a range whose other copies read fine and, by the write quorum, hold every acknowledged sample).",
		}, []string{"reason"}),
		deleted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_compactor_blocks_deleted_total", Help: "Blocks deleted from the bucket, by reason: deletion-mark (older than -compactor.deletion-delay) or partial (no meta.json, older than -compactor.partial-block-deletion-delay).",
		}, []string{"reason"}),
		deletionFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_block_deletion_failures_total", Help: "Block deletions that failed; retried next run.",
		}),
		partialBlocks: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_compactor_partial_blocks", Help: "Blocks without meta.json older than an hour (not an upload in progress) in the owned tenants, at the last run.",
		}),
		corruptMeta: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_compactor_corrupt_meta_blocks", Help: "Blocks whose meta.json cannot be decoded in the owned tenants, at the last run; they are invisible to queries.",
		}),
		indexUpdates: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_bucket_index_updates_total", Help: "Bucket index updates written.",
		}),
		indexUpdateFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_compactor_bucket_index_update_failures_total", Help: "Bucket index updates that failed.",
		}),
	}
	for _, r := range ranges {
		m.compactions.WithLabelValues(rangeLabel(r.Milliseconds()))
	}
	for _, r := range []string{noCompactDownload, noCompactOpen, noCompactRead} {
		m.noCompact.WithLabelValues(r)
	}
	for _, r := range []string{reasonCompaction, reasonRetention, reasonDamaged} {
		m.markedDeletion.WithLabelValues(r)
	}
	for _, r := range []string{reasonMarked, reasonPartial} {
		m.deleted.WithLabelValues(r)
	}
	return m
}
