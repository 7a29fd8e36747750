package storequery

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests      *prometheus.CounterVec
	blocksQueried prometheus.Counter
	blockRetries  prometheus.Counter
	blocksSkipped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_querier_store_gateway_requests_total",
			Help: "Requests from this querier to store-gateways, by RPC and outcome (success, error).",
		}, []string{"rpc", "outcome"}),
		blocksQueried: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_querier_store_gateway_blocks_requested_total",
			Help: "Blocks named in requests to store-gateways, retries included.",
		}),
		blockRetries: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_querier_store_gateway_block_retries_total",
			Help: "Blocks asked of another replica because a store-gateway failed or did not serve them.",
		}),
		blocksSkipped: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_querier_store_gateway_damaged_blocks_skipped_total",
			Help: "Damaged ingester blocks left out of a query because other ingesters' copies of their range were served and, by the write quorum, hold every acknowledged sample.",
		}),
	}
}
