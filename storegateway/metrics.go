package storegateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	blocksLoaded      prometheus.Gauge
	blocksOwned       prometheus.Gauge
	blockLoads        prometheus.Counter
	blockLoadFailures prometheus.Counter
	blockUnloads      prometheus.Counter
	headerBuilds      prometheus.Counter
	headerBytes       prometheus.Gauge
	indexRanges       *prometheus.CounterVec // by what: header, postings, series
	indexBytes        *prometheus.CounterVec // by what

	syncs         prometheus.Counter
	syncFailures  prometheus.Counter
	lastSyncTime  prometheus.Gauge
	bucketBytes   *prometheus.CounterVec // by what: index, chunks, meta
	bucketRanges  prometheus.Counter
	chunkRefetch  prometheus.Counter
	seriesSent    prometheus.Counter
	chunksSent    prometheus.Counter
	requestTime   *prometheus.HistogramVec // by rpc
	requestErrors *prometheus.CounterVec   // by rpc
	blockErrors   *prometheus.CounterVec   // by rpc, code

	chunksCache, postingsCache, seriesCache cacheMetrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	hits := f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_cache_hits_total", Help: "Cache lookups that found their entry, by cache (chunks, postings, series)."}, []string{"cache"})
	misses := f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_cache_misses_total", Help: "Cache lookups that did not, by cache."}, []string{"cache"})
	evictions := f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_cache_evictions_total", Help: "Entries evicted to stay within the cache's size, by cache."}, []string{"cache"})
	bytes := f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_storegateway_cache_bytes", Help: "Memory held by the cache, by cache."}, []string{"cache"})
	items := f.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_storegateway_cache_items", Help: "Entries in the cache, by cache."}, []string{"cache"})
	cache := func(name string) cacheMetrics {
		return cacheMetrics{
			hits: hits.WithLabelValues(name), misses: misses.WithLabelValues(name), evictions: evictions.WithLabelValues(name),
			bytes: bytes.WithLabelValues(name), items: items.WithLabelValues(name),
		}
	}
	return &metrics{
		blocksLoaded:      f.NewGauge(prometheus.GaugeOpts{Name: "strata_storegateway_blocks_loaded", Help: "Blocks whose index-header is open now."}),
		blocksOwned:       f.NewGauge(prometheus.GaugeOpts{Name: "strata_storegateway_blocks_owned", Help: "Blocks this store-gateway owns by the ring, at the last sync."}),
		blockLoads:        f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_block_loads_total", Help: "Block index-headers opened on a query."}),
		blockLoadFailures: f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_block_load_failures_total", Help: "Block index-headers that could not be built or opened."}),
		blockUnloads:      f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_block_unloads_total", Help: "Block index-headers closed after -store-gateway.lazy-load-idle-timeout."}),
		headerBuilds:      f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_index_header_builds_total", Help: "Index-headers built from range reads of a block's index into -store-gateway.data-dir (first use, or the local file missing or damaged)."}),
		headerBytes:       f.NewGauge(prometheus.GaugeOpts{Name: "strata_storegateway_index_header_bytes", Help: "Bytes of the index-header files in -store-gateway.data-dir."}),
		indexRanges:       f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_index_range_requests_total", Help: "Range reads of block index objects, by what (header: building an index-header, postings, series); neighbouring ranges share one."}, []string{"what"}),
		indexBytes:        f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_index_range_fetched_bytes_total", Help: "Bytes read from block index objects, by what (header, postings, series)."}, []string{"what"}),
		syncs:             f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_syncs_total", Help: "Syncs of the owned blocks."}),
		syncFailures:      f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_sync_failures_total", Help: "Syncs that could not list some tenant's blocks."}),
		lastSyncTime:      f.NewGauge(prometheus.GaugeOpts{Name: "strata_storegateway_last_sync_timestamp_seconds", Help: "When the last sync without failure ended."}),
		bucketBytes:       f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_bucket_fetched_bytes_total", Help: "Bytes read from the bucket, by what (index, chunks, meta)."}, []string{"what"}),
		bucketRanges:      f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_chunk_range_requests_total", Help: "Range reads of chunk segment files; neighbouring chunks share one."}),
		chunkRefetch:      f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_chunk_refetches_total", Help: "Chunks larger than the range read estimated, read again whole."}),
		seriesSent:        f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_series_returned_total", Help: "Series sent to queriers."}),
		chunksSent:        f.NewCounter(prometheus.CounterOpts{Name: "strata_storegateway_chunks_returned_total", Help: "Chunks sent to queriers."}),
		requestTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_storegateway_request_duration_seconds", Help: "Time to serve a request, by RPC.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), NativeHistogramBucketFactor: 1.1,
		}, []string{"rpc"}),
		requestErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_request_errors_total", Help: "Requests that failed, by RPC."}, []string{"rpc"}),
		blockErrors:   f.NewCounterVec(prometheus.CounterOpts{Name: "strata_storegateway_block_errors_total", Help: "Blocks of a request that failed while the request's other blocks were served, by RPC and gRPC code (DataLoss: damaged block bytes)."}, []string{"rpc", "code"}),
		chunksCache:   cache("chunks"),
		postingsCache: cache("postings"),
		seriesCache:   cache("series"),
	}
}
