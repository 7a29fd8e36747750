package gossip

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Message kinds, the "kind" label of the message counters.
const (
	kindBroadcast = "broadcast" // UDP gossip of one change
	kindReliable  = "reliable"  // TCP send of one change too large for UDP, or the final state
	kindPushPull  = "push_pull" // full state exchanged with one member
)

type metrics struct {
	members          prometheus.GaugeFunc
	queued           prometheus.GaugeFunc
	msgsReceived     *prometheus.CounterVec
	msgsSent         *prometheus.CounterVec
	bytesReceived    *prometheus.CounterVec
	bytesSent        *prometheus.CounterVec
	dropped          *prometheus.CounterVec
	merges           *prometheus.CounterVec
	cas              *prometheus.CounterVec
	joinAttempts     *prometheus.CounterVec
	stateBytes       *prometheus.GaugeVec
	compactedEntries *prometheus.CounterVec

	encryptionKeys           prometheus.Gauge
	encryptionReloadFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, members, queued func() float64) *metrics {
	f := promauto.With(reg)
	return &metrics{
		members: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_gossip_members", Help: "Live members of the gossip cluster as this one sees them, itself included.",
		}, members),
		queued: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "strata_gossip_broadcast_queue_length", Help: "Changes waiting to be gossiped.",
		}, queued),
		msgsReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_messages_received_total", Help: "Gossip messages received, by kind (broadcast, reliable, push_pull).",
		}, []string{"kind"}),
		msgsSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_messages_sent_total", Help: "Gossip messages sent, by kind (broadcast, reliable, push_pull).",
		}, []string{"kind"}),
		bytesReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_received_bytes_total", Help: "Bytes of gossip messages received, by kind.",
		}, []string{"kind"}),
		bytesSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_sent_bytes_total", Help: "Bytes of gossip messages sent, by kind.",
		}, []string{"kind"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_messages_dropped_total", Help: "Gossip messages dropped, by reason.",
		}, []string{"reason"}),
		merges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_merge_total", Help: "Values merged into a key, by whether they changed it.",
		}, []string{"key", "changed"}),
		cas: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_cas_total", Help: "Local compare-and-swap calls, by key and outcome (changed, unchanged, error).",
		}, []string{"key", "outcome"}),
		joinAttempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_join_attempts_total", Help: "Attempts to join (or rejoin) the cluster through the seeds, by outcome.",
		}, []string{"outcome"}),
		stateBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_gossip_state_bytes", Help: "Encoded size of a key's full value, as last sent in a push/pull.",
		}, []string{"key"}),
		compactedEntries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_gossip_compacted_entries_total", Help: "Expired tombstones and silent entries dropped from a key's value.",
		}, []string{"key"}),
		encryptionKeys: f.NewGauge(prometheus.GaugeOpts{
			Name: "strata_gossip_encryption_keys", Help: "Keys in the gossip keyring (-memberlist.encryption-keys-file); 0: gossip is not encrypted.",
		}),
		encryptionReloadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "strata_gossip_encryption_keys_reload_failures_total", Help: "Reads of -memberlist.encryption-keys-file that failed; the keys in force were kept.",
		}),
	}
}

// Reasons a message is dropped.
const (
	dropMalformed    = "malformed"
	dropUnknownKey   = "unknown_key"
	dropCodec        = "codec_mismatch"
	dropLabel        = "cluster_label_mismatch"
	dropTooLarge     = "too_large"
	dropMergeError   = "merge_error"
	dropRelayTooBig  = "relay_too_large"
	dropSendQueue    = "send_queue_full"
	dropSendFailed   = "send_failed"
	dropEncodeFailed = "encode_failed"
)
