package limits

import (
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Ingestion rate strategies of -distributor.ingestion-rate-limit-strategy.
const (
	// StrategyLocal applies the rate in every distributor on its own: a
	// cluster of n distributors takes up to n times the rate.
	StrategyLocal = "local"
	// StrategyGlobal divides the rate by the healthy distributors of the
	// distributor ring, so that the cluster as a whole takes the rate (as
	// Mimir does; it relies on the load balancer spreading pushes evenly).
	StrategyGlobal = "global"
)

// Limits are one tenant's limits. The flag values are the defaults for every
// tenant; the runtime overrides file replaces them field by field. The YAML
// name of a field is its override name, which every rejection message gives.
type Limits struct {
	// Write path, checked by the distributor.
	IngestionRate          float64       `yaml:"ingestion_rate"`
	IngestionBurstSize     int           `yaml:"ingestion_burst_size"`
	IngestionRateStrategy  string        `yaml:"ingestion_rate_strategy"`
	RequestRate            float64       `yaml:"request_rate"`
	RequestBurstSize       int           `yaml:"request_burst_size"`
	MaxLabelNamesPerSeries int           `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int           `yaml:"max_label_name_length"`
	MaxLabelValueLength    int           `yaml:"max_label_value_length"`
	MaxMetadataLength      int           `yaml:"max_metadata_length"`
	CreationGracePeriod    time.Duration `yaml:"creation_grace_period"`
	PastGracePeriod        time.Duration `yaml:"past_grace_period"`
	MaxExemplarsPerSeries  int           `yaml:"max_exemplars_per_series"`

	// OTLP translation, by the distributor's OTLP endpoint (Prometheus'
	// own OTLP translation: these are its otlp: settings, per tenant).
	OTLPTranslationStrategy          string `yaml:"otlp_translation_strategy"`
	OTLPPromoteResourceAttributes    string `yaml:"otlp_promote_resource_attributes"`
	OTLPConvertHistogramsToNHCB      bool   `yaml:"otlp_convert_histograms_to_nhcb"`
	OTLPDeltaTemporality             string `yaml:"otlp_delta_temporality"`
	OTLPKeepIdentifyingResourceAttrs bool   `yaml:"otlp_keep_identifying_resource_attributes"`

	// HA-pair dedup, by the distributor's HA tracker: of the replicas of
	// one cluster (same value of HAClusterLabel, different values of
	// HAReplicaLabel) only the elected one's samples are kept.
	AcceptHASamples          bool          `yaml:"accept_ha_samples"`
	HAClusterLabel           string        `yaml:"ha_cluster_label"`
	HAReplicaLabel           string        `yaml:"ha_replica_label"`
	HAMaxClusters            int           `yaml:"ha_max_clusters"`
	HAFailoverTimeout        time.Duration `yaml:"ha_tracker_failover_timeout"`
	HAUpdateTimeout          time.Duration `yaml:"ha_tracker_update_timeout"`
	HAUpdateTimeoutJitterMax time.Duration `yaml:"ha_tracker_update_timeout_jitter_max"`

	// Series, checked by the ingesters.
	MaxGlobalSeriesPerUser   int `yaml:"max_global_series_per_user"`
	MaxGlobalSeriesPerMetric int `yaml:"max_global_series_per_metric"`
	// The next three have no flag of their own: their defaults are the
	// ingester's flags, and nil (not in the tenant's overrides) means the
	// flag. OutOfOrderTimeWindow replaces -ingester.out-of-order-time-window.
	OutOfOrderTimeWindow *time.Duration `yaml:"out_of_order_time_window,omitempty"`
	// MaxExemplars replaces -blocks-storage.tsdb.max-exemplars (exemplars
	// an ingester keeps per tenant) for one tenant; nil means the flag.
	MaxExemplars *int `yaml:"max_exemplars,omitempty"`
	// MaxMetadataPerUser replaces -ingester.max-metadata-per-tenant
	// (metric families with metadata an ingester keeps per tenant) for one
	// tenant; nil means the flag.
	MaxMetadataPerUser *int `yaml:"max_metadata_per_user,omitempty"`
	// MaxMetadataPerMetric is the most distinct metadata entries (type,
	// help, unit) an ingester keeps per metric family of a tenant; a new
	// one beyond it evicts the least recently seen. 0 means no limit.
	MaxMetadataPerMetric int `yaml:"max_metadata_per_metric"`

	// Read path, checked by the querier.
	MaxFetchedSeriesPerQuery  int           `yaml:"max_fetched_series_per_query"`
	MaxFetchedSamplesPerQuery int           `yaml:"max_fetched_samples_per_query"`
	MaxQueryLength            time.Duration `yaml:"max_query_length"`
	MaxQueryLookback          time.Duration `yaml:"max_query_lookback"`
	QueryTimeout              time.Duration `yaml:"query_timeout"`
	MaxConcurrentQueries      int           `yaml:"max_concurrent_queries"`

	// Query-frontend: split legs and the results cache.
	MaxQueryParallelism int           `yaml:"max_query_parallelism"`
	MaxCacheFreshness   time.Duration `yaml:"max_cache_freshness"`
	ResultsCacheTTL     time.Duration `yaml:"results_cache_ttl"`

	// Long-term storage.
	CompactorBlocksRetentionPeriod time.Duration `yaml:"compactor_blocks_retention_period"`
	// CompactorBlockUploadEnabled lets the tenant upload TSDB blocks
	// (strata backfill) through the compactor's block upload API.
	CompactorBlockUploadEnabled bool `yaml:"compactor_block_upload_enabled"`

	// Rules, checked by the ruler on upload (counts) and evaluation.
	RulerMaxRuleGroupsPerTenant int           `yaml:"ruler_max_rule_groups_per_tenant"`
	RulerMaxRulesPerRuleGroup   int           `yaml:"ruler_max_rules_per_rule_group"`
	RulerMinEvaluationInterval  time.Duration `yaml:"ruler_min_evaluation_interval"`
	RulerEvaluationConcurrency  int           `yaml:"ruler_evaluation_concurrency"`
	// RulerEvaluationTimeout replaces -ruler.evaluation-timeout for one
	// tenant; 0 means the flag. Override only.
	RulerEvaluationTimeout time.Duration `yaml:"ruler_evaluation_timeout,omitempty"`
	// RulerAlertmanagerURL, RulerExternalURL and RulerExternalLabels
	// replace the ruler's -ruler.alertmanager-url, -ruler.external.url and
	// add labels to every alert of one tenant; override only.
	RulerAlertmanagerURL string   `yaml:"ruler_alertmanager_url,omitempty"`
	RulerExternalURL     string   `yaml:"ruler_external_url,omitempty"`
	RulerExternalLabels  LabelSet `yaml:"ruler_external_labels,omitempty"`
	// Alertmanager, checked when a tenant uploads its configuration and
	// when alerts arrive.
	AlertmanagerMaxConfigSizeBytes    int  `yaml:"alertmanager_max_config_size_bytes"`
	AlertmanagerMaxTemplatesCount     int  `yaml:"alertmanager_max_templates_count"`
	AlertmanagerMaxTemplateSizeBytes  int  `yaml:"alertmanager_max_template_size_bytes"`
	AlertmanagerMaxAlertsCount        int  `yaml:"alertmanager_max_alerts_count"`
	AlertmanagerMaxSilencesCount      int  `yaml:"alertmanager_max_silences_count"`
	AlertmanagerMaxSilenceSizeBytes   int  `yaml:"alertmanager_max_silence_size_bytes"`
	AlertmanagerMaxAggregationGroups  int  `yaml:"alertmanager_max_dispatcher_aggregation_groups"`
	AlertmanagerReceiversAllowPrivate bool `yaml:"alertmanager_receivers_firewall_allow_private"`
	// AlertmanagerNotificationRateLimit is the notifications per second
	// each integration of a tenant may send, 0 for no limit;
	// AlertmanagerNotificationRateLimitPerIntegration replaces it for the
	// integrations it names (webhook, email, slack, ...).
	AlertmanagerNotificationRateLimit               float64 `yaml:"alertmanager_notification_rate_limit"`
	AlertmanagerNotificationRateLimitPerIntegration RateMap `yaml:"alertmanager_notification_rate_limit_per_integration"`
}

// Values of OTLPDeltaTemporality.
const (
	// DeltaRefuse refuses delta-temporality metrics: the rest of the push
	// is stored and the answer names them (partial success).
	DeltaRefuse = "refuse"
	// DeltaConvert converts them to cumulative in the distributor that
	// receives them, as the OpenTelemetry Collector's deltatocumulative
	// processor does (it is that processor): every push of one stream
	// must then reach the same distributor.
	DeltaConvert = "convert"
)

// OTLP translation strategies, as Prometheus' otlp.translation_strategy.
var otlpStrategies = []string{"UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes", "NoUTF8EscapingWithSuffixes", "NoTranslation"}

// Flag names of the limits, for messages: a rejection names the flag (the
// default) and the override (the YAML name) that change the limit.
const (
	FlagIngestionRate            = "distributor.ingestion-rate-limit"
	FlagIngestionBurstSize       = "distributor.ingestion-burst-size"
	FlagIngestionRateStrategy    = "distributor.ingestion-rate-limit-strategy"
	FlagRequestRate              = "distributor.request-rate-limit"
	FlagRequestBurstSize         = "distributor.request-burst-size"
	FlagOTLPTranslationStrategy  = "distributor.otlp.translation-strategy"
	FlagOTLPPromoteResourceAttrs = "distributor.otlp.promote-resource-attributes"
	FlagOTLPConvertNHCB          = "distributor.otlp.convert-histograms-to-nhcb"
	FlagOTLPDeltaTemporality     = "distributor.otlp.delta-temporality"
	FlagOTLPKeepIdentifyingAttrs = "distributor.otlp.keep-identifying-resource-attributes"
	FlagMaxGlobalSeriesPerUser   = "ingester.max-global-series-per-user"
	FlagMaxGlobalSeriesPerMetric = "ingester.max-global-series-per-metric"
	FlagMaxMetadataPerMetric     = "ingester.max-metadata-per-metric"
	FlagMaxFetchedSeriesPerQuery = "querier.max-fetched-series-per-query"
	FlagMaxFetchedSamples        = "querier.max-fetched-samples-per-query"
	FlagMaxQueryLength           = "limits.max-query-length"
	FlagMaxQueryLookback         = "querier.max-query-lookback"
	FlagQueryTimeout             = "limits.query-timeout"
	FlagMaxConcurrentQueries     = "querier.max-concurrent-queries-per-tenant"
	FlagMaxQueryParallelism      = "frontend.max-query-parallelism"
	FlagMaxCacheFreshness        = "frontend.max-cache-freshness"
	FlagResultsCacheTTL          = "frontend.results-cache-ttl"
	FlagAcceptHASamples          = "distributor.ha-tracker.enable-for-all-users"
	FlagHAClusterLabel           = "distributor.ha-tracker.cluster"
	FlagHAReplicaLabel           = "distributor.ha-tracker.replica"
	FlagHAMaxClusters            = "distributor.ha-tracker.max-clusters"
	FlagHAFailoverTimeout        = "distributor.ha-tracker.failover-timeout"
	FlagHAUpdateTimeout          = "distributor.ha-tracker.update-timeout"
	FlagHAUpdateTimeoutJitterMax = "distributor.ha-tracker.update-timeout-jitter-max"
	FlagRulerMaxRuleGroups       = "ruler.max-rule-groups-per-tenant"
	FlagRulerMaxRulesPerGroup    = "ruler.max-rules-per-rule-group"
	FlagRulerMinInterval         = "ruler.min-evaluation-interval"
	FlagRulerConcurrency         = "ruler.tenant-evaluation-concurrency"

	FlagAlertmanagerMaxConfigSize     = "alertmanager.max-config-size-bytes"
	FlagAlertmanagerMaxTemplates      = "alertmanager.max-templates-count"
	FlagAlertmanagerMaxTemplateSize   = "alertmanager.max-template-size-bytes"
	FlagAlertmanagerMaxAlerts         = "alertmanager.max-alerts-count"
	FlagAlertmanagerMaxSilences       = "alertmanager.max-silences-count"
	FlagAlertmanagerMaxSilenceSize    = "alertmanager.max-silence-size-bytes"
	FlagAlertmanagerMaxAggrGroups     = "alertmanager.max-dispatcher-aggregation-groups"
	FlagAlertmanagerFirewallAllowPriv = "alertmanager.receivers-firewall-allow-private"
	FlagAlertmanagerNotificationRate  = "alertmanager.notification-rate-limit"
	FlagAlertmanagerNotificationRates = "alertmanager.notification-rate-limit-per-integration"
)

// RegisterFlags registers the default limits.
//
// The ingestion rate and the series limits are off by default: strata
// -target=all serves one tenant with no flags, and one Prometheus of 150k
// series at a 15s interval already pushes 10,000 samples/s, Mimir's
// default rate; a single-tenant setup must not be throttled by a limit
// meant for a shared service. Operators of a multi-tenant cluster set them
// (Mimir's defaults, 10000 samples/s and 150000 series, are a fair start).
// The burst is on by default so that a rate alone is enough. Query limits
// are off too: the querier's own -querier.timeout, -querier.max-samples
// and -querier.max-concurrent bound every query already; these only
// tighten them per tenant.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&l.IngestionRate, FlagIngestionRate, 0, "Samples (float and histogram) per second a tenant may push; pushes over it get 429 and are retried by the sender. 0 means no limit.")
	fs.IntVar(&l.IngestionBurstSize, FlagIngestionBurstSize, 200000, "Samples a tenant may push at once above its rate (the token bucket's size); at least the largest push.")
	fs.StringVar(&l.IngestionRateStrategy, FlagIngestionRateStrategy, StrategyGlobal, "local: every distributor allows the full rate; global: the rate is divided by the healthy distributors of the ring.")
	fs.Float64Var(&l.RequestRate, FlagRequestRate, 0, "Pushes (requests, whatever their size) per second a tenant may send; more get 429 before their body is read. Divided by the healthy distributors under the global -distributor.ingestion-rate-limit-strategy. 0 means no limit.")
	fs.IntVar(&l.RequestBurstSize, FlagRequestBurstSize, 100, "Pushes a tenant may send at once above its request rate (the token bucket's size).")
	fs.IntVar(&l.MaxLabelNamesPerSeries, "validation.max-label-names-per-series", 30, "Most labels a series may have, its metric name included.")
	fs.IntVar(&l.MaxLabelNameLength, "validation.max-length-label-name", 1024, "Longest label name, in bytes.")
	fs.IntVar(&l.MaxLabelValueLength, "validation.max-length-label-value", 2048, "Longest label value, in bytes.")
	fs.IntVar(&l.MaxMetadataLength, "validation.max-metadata-length", 1024, "Longest metric family name, help or unit in metadata, in bytes.")
	fs.DurationVar(&l.CreationGracePeriod, "validation.create-grace-period", 10*time.Minute, "Reject samples whose timestamp is further than this in the future.")
	fs.DurationVar(&l.PastGracePeriod, "validation.past-grace-period", 0, "Reject samples older than this; 0 accepts any age the ingester's TSDB accepts.")
	fs.IntVar(&l.MaxExemplarsPerSeries, "validation.max-exemplars-per-series", 10, "Most exemplars kept per series in one push; extra exemplars are dropped and counted.")
	fs.StringVar(&l.OTLPTranslationStrategy, FlagOTLPTranslationStrategy, "UnderscoreEscapingWithSuffixes", "How OTLP metric and attribute names become Prometheus names, as Prometheus' otlp.translation_strategy: UnderscoreEscapingWithSuffixes (legacy charset, unit and _total suffixes), UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes (UTF-8 names kept: needs -distributor.name-validation-scheme=utf8) or NoTranslation. Override: otlp_translation_strategy.")
	fs.StringVar(&l.OTLPPromoteResourceAttributes, FlagOTLPPromoteResourceAttrs, "", "Comma-separated OTLP resource attributes copied as labels onto every series of the resource (all resource attributes also go to target_info). Override: otlp_promote_resource_attributes.")
	fs.BoolVar(&l.OTLPConvertHistogramsToNHCB, FlagOTLPConvertNHCB, false, "Store OTLP explicit-bucket histograms as native histograms with custom buckets (one series) instead of classic _bucket/_sum/_count series. Override: otlp_convert_histograms_to_nhcb.")
	fs.StringVar(&l.OTLPDeltaTemporality, FlagOTLPDeltaTemporality, DeltaRefuse, "What to do with OTLP sums and histograms of delta temporality: refuse (the rest of the push is stored, the answer names them) or convert (to cumulative, in the receiving distributor, with the OpenTelemetry Collector's deltatocumulative processor: every push of one stream must reach the same distributor). Override: otlp_delta_temporality.")
	fs.BoolVar(&l.OTLPKeepIdentifyingResourceAttrs, FlagOTLPKeepIdentifyingAttrs, false, "Also keep service.name, service.namespace and service.instance.id as labels of target_info (they make job and instance). Override: otlp_keep_identifying_resource_attributes.")
	l.registerHAFlags(fs)
	fs.IntVar(&l.MaxGlobalSeriesPerUser, FlagMaxGlobalSeriesPerUser, 1_000_000, "Most in-memory series a tenant may have across the cluster (each ingester allows its share: limit × replication factor / ingesters); 0 means no limit. The default is far above what a new tenant sends (a node_exporter is about 1,000 series) and stops a runaway label (a request id, a timestamp) before it takes the ingesters' memory; raise it per tenant with the max_global_series_per_user override.")
	fs.IntVar(&l.MaxGlobalSeriesPerMetric, FlagMaxGlobalSeriesPerMetric, 0, "Most in-memory series one metric name of a tenant may have across the cluster, shared among ingesters as above; 0 means no limit.")
	fs.IntVar(&l.MaxMetadataPerMetric, FlagMaxMetadataPerMetric, 10, "Most distinct metadata entries (type, help, unit) an ingester keeps per metric family of a tenant, e.g. from exporters that disagree on the help; a new entry beyond it evicts the least recently seen one. 0 means no limit.")
	fs.IntVar(&l.MaxFetchedSeriesPerQuery, FlagMaxFetchedSeriesPerQuery, 0, "Most series one query of a tenant may fetch (summed over its selectors, replicas counted once), and most series one /api/v1/series or /api/v1/query_exemplars request may return; more get 422. 0 means no limit.")
	fs.IntVar(&l.MaxFetchedSamplesPerQuery, FlagMaxFetchedSamples, 0, "Most samples one query of a tenant may read from storage (each sample once, however many steps use it); unlike -querier.max-samples, which bounds the samples held at once. 0 means no limit.")
	fs.DurationVar(&l.MaxQueryLength, FlagMaxQueryLength, 0, "Longest time range (end - start) of a tenant's query or /series, /labels, /label/<name>/values, /query_exemplars request; longer get 400, a metadata request without a start is cut to the limit. 0 leaves only -querier.max-query-length.")
	fs.DurationVar(&l.MaxQueryLookback, FlagMaxQueryLookback, 0, "How far back a tenant's queries and metadata requests may read; older parts of the range are cut off. 0 means no limit.")
	fs.DurationVar(&l.QueryTimeout, FlagQueryTimeout, 0, "Longest a tenant's query or metadata request may run, then it gets 503; for queries the shorter of it and -querier.timeout applies. 0 leaves only -querier.timeout.")
	fs.IntVar(&l.MaxQueryParallelism, FlagMaxQueryParallelism, 8, "Most split legs of one tenant's range queries the query-frontend sends to the queriers at once (all its queries together); more wait in the frontend. Keep it below what the queriers serve of one tenant at once (-querier.max-concurrent-queries-per-tenant; with multi-tenancy by default half of -querier.max-concurrent, 10), or legs get 429 and fail their query. Override: max_query_parallelism.")
	fs.DurationVar(&l.MaxCacheFreshness, FlagMaxCacheFreshness, 10*time.Minute, "The query-frontend caches no result newer than now minus this (samples may still arrive for it); those points are queried every time. Override: max_cache_freshness.")
	fs.DurationVar(&l.ResultsCacheTTL, FlagResultsCacheTTL, 7*24*time.Hour, "How long the query-frontend keeps a tenant's cached results. Override: results_cache_ttl.")
	fs.DurationVar(&l.CompactorBlocksRetentionPeriod, "compactor.blocks-retention-period", 0, "Delete a tenant's blocks from object storage once all their samples are older than this (marked, removed after -compactor.deletion-delay); 0 keeps them forever. Override: compactor_blocks_retention_period.")
	fs.BoolVar(&l.CompactorBlockUploadEnabled, "compactor.block-upload-enabled", false, "Let tenants upload TSDB blocks (strata backfill, /api/v1/upload/block/...). Off: an upload bypasses the ingestion limits (series, rate, sample age) and writes history straight into object storage, so the operator opts a tenant in. Override: compactor_block_upload_enabled.")
	fs.IntVar(&l.RulerMaxRuleGroupsPerTenant, FlagRulerMaxRuleGroups, 70, "Most rule groups a tenant may have; an upload over it gets 400. 0 means no limit. Override: ruler_max_rule_groups_per_tenant.")
	fs.IntVar(&l.RulerMaxRulesPerRuleGroup, FlagRulerMaxRulesPerGroup, 20, "Most rules one rule group of a tenant may have; an upload over it gets 400. 0 means no limit. Override: ruler_max_rules_per_rule_group.")
	fs.DurationVar(&l.RulerMinEvaluationInterval, FlagRulerMinInterval, 0, "Shortest interval a tenant's rule group may have; an upload with a shorter one gets 400. 0 means no minimum. Override: ruler_min_evaluation_interval.")
	fs.IntVar(&l.RulerEvaluationConcurrency, FlagRulerConcurrency, 4, "Most rule queries of one tenant a ruler evaluates at once; more wait (their wait counts in -ruler.evaluation-timeout). Override: ruler_evaluation_concurrency.")
	fs.IntVar(&l.AlertmanagerMaxConfigSizeBytes, FlagAlertmanagerMaxConfigSize, 1<<20, "Largest Alertmanager configuration upload of a tenant (the whole body: alertmanager_config and template_files), in bytes; larger get 400. 0 means no limit. Override: alertmanager_max_config_size_bytes.")
	fs.IntVar(&l.AlertmanagerMaxTemplatesCount, FlagAlertmanagerMaxTemplates, 100, "Most template files in a tenant's Alertmanager configuration; more get 400. 0 means no limit. Override: alertmanager_max_templates_count.")
	fs.IntVar(&l.AlertmanagerMaxTemplateSizeBytes, FlagAlertmanagerMaxTemplateSize, 64<<10, "Largest template file in a tenant's Alertmanager configuration, in bytes; larger get 400. 0 means no limit. Override: alertmanager_max_template_size_bytes.")
	fs.IntVar(&l.AlertmanagerMaxAlertsCount, FlagAlertmanagerMaxAlerts, 10000, "Most alerts a tenant's Alertmanager holds at once; a POST that would go over it with new alerts gets 400 naming the limit and stores none of its alerts (updates of alerts held still pass when alone). 0 means no limit. Override: alertmanager_max_alerts_count.")
	fs.IntVar(&l.AlertmanagerMaxSilencesCount, FlagAlertmanagerMaxSilences, 10000, "Most silences a tenant's Alertmanager keeps, expired ones included until their retention ends; a new silence over it is refused with 400. 0 means no limit. Override: alertmanager_max_silences_count.")
	fs.IntVar(&l.AlertmanagerMaxSilenceSizeBytes, FlagAlertmanagerMaxSilenceSize, 64<<10, "Largest silence (matchers, comment, creator) a tenant may create, in bytes as stored; larger are refused with 400. 0 means no limit. Override: alertmanager_max_silence_size_bytes.")
	fs.IntVar(&l.AlertmanagerMaxAggregationGroups, FlagAlertmanagerMaxAggrGroups, 1000, "Most aggregation groups (alerts grouped by a route's group_by) a tenant's Alertmanager keeps; alerts of a further group are not notified, counted in strata_alertmanager_dispatcher_aggregation_group_limit_reached_total. 0 means no limit. Override: alertmanager_max_dispatcher_aggregation_groups.")
	fs.BoolVar(&l.AlertmanagerReceiversAllowPrivate, FlagAlertmanagerFirewallAllowPriv, false, "Let tenants' Alertmanager receivers reach loopback, private (RFC 1918, fc00::/7), link-local, unspecified, multicast and special-purpose (100.64.0.0/10, 0.0.0.0/8, 198.18.0.0/15, 240.0.0.0/4, NAT64, ...) addresses; by default a notification to such an address fails at dial time (and an e-mail smarthost there is refused on upload). Override: alertmanager_receivers_firewall_allow_private.")
	fs.Float64Var(&l.AlertmanagerNotificationRateLimit, FlagAlertmanagerNotificationRate, 0, "Notifications per second each integration (webhook, email, slack, ...) of a tenant's Alertmanager may send, with a burst of the rate (at least 1); a notification over it fails for that integration (retried at the group's next flush), counted in strata_alertmanager_notification_rate_limited_total. 0 means no limit. Override: alertmanager_notification_rate_limit.")
	fs.Var(&l.AlertmanagerNotificationRateLimitPerIntegration, FlagAlertmanagerNotificationRates, "Notification rate limits of single integrations, as JSON: {\"webhook\": 1, \"email\": 0.1}; an integration named here gets its rate instead of -"+FlagAlertmanagerNotificationRate+" (0 means no limit for it). Override: alertmanager_notification_rate_limit_per_integration.")
	fs.IntVar(&l.MaxConcurrentQueries, FlagMaxConcurrentQueries, 0, "Most queries and metadata requests (/series, /labels, /label/<name>/values, /query_exemplars) of one tenant a querier serves at once; more get 429. 0: with multi-tenancy half of -querier.max-concurrent (so no tenant can take every slot), without it only -querier.max-concurrent.")
}

// Validate checks the limits for values that cannot work.
func (l *Limits) Validate() error {
	switch {
	case l.IngestionRate < 0 || l.IngestionRate != l.IngestionRate:
		return fmt.Errorf("-%s must not be negative, got %v", FlagIngestionRate, l.IngestionRate)
	case l.IngestionBurstSize < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagIngestionBurstSize, l.IngestionBurstSize)
	case l.IngestionRate > 0 && l.IngestionBurstSize < 1:
		return fmt.Errorf("-%s must be at least 1 when -%s is set (every push would be refused), got %d", FlagIngestionBurstSize, FlagIngestionRate, l.IngestionBurstSize)
	case l.RequestRate < 0 || l.RequestRate != l.RequestRate:
		return fmt.Errorf("-%s must not be negative, got %v", FlagRequestRate, l.RequestRate)
	case l.RequestBurstSize < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagRequestBurstSize, l.RequestBurstSize)
	case l.RequestRate > 0 && l.RequestBurstSize < 1:
		return fmt.Errorf("-%s must be at least 1 when -%s is set (every push would be refused), got %d", FlagRequestBurstSize, FlagRequestRate, l.RequestBurstSize)
	case l.IngestionRateStrategy != StrategyLocal && l.IngestionRateStrategy != StrategyGlobal:
		return fmt.Errorf("-%s must be %q or %q, got %q", FlagIngestionRateStrategy, StrategyLocal, StrategyGlobal, l.IngestionRateStrategy)
	case l.MaxLabelNamesPerSeries < 1:
		return fmt.Errorf("-validation.max-label-names-per-series must be at least 1, got %d", l.MaxLabelNamesPerSeries)
	case l.MaxLabelNameLength < 1:
		return fmt.Errorf("-validation.max-length-label-name must be at least 1, got %d", l.MaxLabelNameLength)
	case l.MaxLabelValueLength < 1:
		return fmt.Errorf("-validation.max-length-label-value must be at least 1, got %d", l.MaxLabelValueLength)
	case l.MaxMetadataLength < 1:
		return fmt.Errorf("-validation.max-metadata-length must be at least 1, got %d", l.MaxMetadataLength)
	case l.CreationGracePeriod < 0:
		return fmt.Errorf("-validation.create-grace-period must not be negative, got %s", l.CreationGracePeriod)
	case l.PastGracePeriod < 0:
		return fmt.Errorf("-validation.past-grace-period must not be negative, got %s", l.PastGracePeriod)
	case l.MaxExemplarsPerSeries < 0:
		return fmt.Errorf("-validation.max-exemplars-per-series must not be negative, got %d", l.MaxExemplarsPerSeries)
	case !(l.AlertmanagerNotificationRateLimit >= 0): // NaN too
		return fmt.Errorf("-%s must not be negative, got %v", FlagAlertmanagerNotificationRate, l.AlertmanagerNotificationRateLimit)
	case !slices.Contains(otlpStrategies, l.OTLPTranslationStrategy):
		return fmt.Errorf("-%s must be one of %s, got %q", FlagOTLPTranslationStrategy, strings.Join(otlpStrategies, ", "), l.OTLPTranslationStrategy)
	case l.OTLPDeltaTemporality != DeltaRefuse && l.OTLPDeltaTemporality != DeltaConvert:
		return fmt.Errorf("-%s must be %q or %q, got %q", FlagOTLPDeltaTemporality, DeltaRefuse, DeltaConvert, l.OTLPDeltaTemporality)
	}
	if err := l.AlertmanagerNotificationRateLimitPerIntegration.validate(); err != nil {
		return fmt.Errorf("-%s: %w", FlagAlertmanagerNotificationRates, err)
	}
	if err := l.validateHA(); err != nil {
		return err
	}
	switch {
	case l.MaxGlobalSeriesPerUser < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxGlobalSeriesPerUser, l.MaxGlobalSeriesPerUser)
	case l.MaxGlobalSeriesPerMetric < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxGlobalSeriesPerMetric, l.MaxGlobalSeriesPerMetric)
	case l.OutOfOrderTimeWindow != nil && *l.OutOfOrderTimeWindow < 0:
		return fmt.Errorf("out_of_order_time_window must not be negative, got %s", *l.OutOfOrderTimeWindow)
	case l.MaxExemplars != nil && *l.MaxExemplars < 0:
		return fmt.Errorf("max_exemplars must not be negative, got %d", *l.MaxExemplars)
	case l.MaxMetadataPerUser != nil && *l.MaxMetadataPerUser < 0:
		return fmt.Errorf("max_metadata_per_user must not be negative, got %d", *l.MaxMetadataPerUser)
	case l.MaxMetadataPerMetric < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxMetadataPerMetric, l.MaxMetadataPerMetric)
	case l.MaxFetchedSeriesPerQuery < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxFetchedSeriesPerQuery, l.MaxFetchedSeriesPerQuery)
	case l.MaxFetchedSamplesPerQuery < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxFetchedSamples, l.MaxFetchedSamplesPerQuery)
	case l.RulerMaxRuleGroupsPerTenant < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagRulerMaxRuleGroups, l.RulerMaxRuleGroupsPerTenant)
	case l.RulerMaxRulesPerRuleGroup < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagRulerMaxRulesPerGroup, l.RulerMaxRulesPerRuleGroup)
	case l.RulerMinEvaluationInterval < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagRulerMinInterval, l.RulerMinEvaluationInterval)
	case l.RulerEvaluationTimeout < 0:
		return fmt.Errorf("ruler_evaluation_timeout must not be negative, got %s", l.RulerEvaluationTimeout)
	case l.RulerEvaluationConcurrency < 1:
		return fmt.Errorf("-%s must be at least 1, got %d", FlagRulerConcurrency, l.RulerEvaluationConcurrency)
	case l.MaxQueryLength < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagMaxQueryLength, l.MaxQueryLength)
	case l.MaxQueryParallelism < 1:
		return fmt.Errorf("-%s must be at least 1, got %d", FlagMaxQueryParallelism, l.MaxQueryParallelism)
	case l.MaxCacheFreshness < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagMaxCacheFreshness, l.MaxCacheFreshness)
	case l.ResultsCacheTTL <= 0:
		return fmt.Errorf("-%s must be positive, got %s", FlagResultsCacheTTL, l.ResultsCacheTTL)
	case l.MaxQueryLookback < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagMaxQueryLookback, l.MaxQueryLookback)
	case l.QueryTimeout < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagQueryTimeout, l.QueryTimeout)
	case l.MaxConcurrentQueries < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagMaxConcurrentQueries, l.MaxConcurrentQueries)
	case l.CompactorBlocksRetentionPeriod < 0:
		return fmt.Errorf("-compactor.blocks-retention-period must not be negative, got %s", l.CompactorBlocksRetentionPeriod)
	case l.AlertmanagerMaxConfigSizeBytes < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxConfigSize, l.AlertmanagerMaxConfigSizeBytes)
	case l.AlertmanagerMaxTemplatesCount < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxTemplates, l.AlertmanagerMaxTemplatesCount)
	case l.AlertmanagerMaxTemplateSizeBytes < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxTemplateSize, l.AlertmanagerMaxTemplateSizeBytes)
	case l.AlertmanagerMaxAggregationGroups < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxAggrGroups, l.AlertmanagerMaxAggregationGroups)
	case l.AlertmanagerMaxAlertsCount < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxAlerts, l.AlertmanagerMaxAlertsCount)
	case l.AlertmanagerMaxSilencesCount < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxSilences, l.AlertmanagerMaxSilencesCount)
	case l.AlertmanagerMaxSilenceSizeBytes < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagAlertmanagerMaxSilenceSize, l.AlertmanagerMaxSilenceSizeBytes)
	}
	return nil
}

// registerHAFlags registers the HA-pair dedup limits. The names and
// defaults are Mimir's, so that an HA pair configured for Mimir (external
// labels cluster and __replica__) works unchanged. Dedup is off by default:
// it drops data, so a tenant opts in (accept_ha_samples: true in the
// runtime overrides) or the operator turns it on for every tenant.
func (l *Limits) registerHAFlags(fs *flag.FlagSet) {
	fs.BoolVar(&l.AcceptHASamples, FlagAcceptHASamples, false, "Deduplicate HA pairs of every tenant (a tenant's accept_ha_samples override turns it on or off for that tenant): of the Prometheus replicas sending the same cluster label, only the elected replica's samples are kept, the others get 202 and are dropped.")
	fs.StringVar(&l.HAClusterLabel, FlagHAClusterLabel, "cluster", "Label naming the HA cluster (the pair) a request comes from; it is kept on the series.")
	fs.StringVar(&l.HAReplicaLabel, FlagHAReplicaLabel, "__replica__", "Label naming the replica within its HA cluster; it is removed from the series of the elected replica, so that both replicas write the same series.")
	fs.IntVar(&l.HAMaxClusters, FlagHAMaxClusters, 100, "Most HA clusters a tenant may have tracked at once; a request from a new cluster beyond it gets 400. 0 means no limit.")
	fs.DurationVar(&l.HAFailoverTimeout, FlagHAFailoverTimeout, 30*time.Second, "When the elected replica's last request recorded in the shared election is this old, the next replica of its cluster that writes is elected. Distributors record it at most every update timeout (+ jitter), so failover needs at least this minus -distributor.ha-tracker.update-timeout and its jitter of silence. At least update-timeout + update-timeout-jitter-max + 1s.")
	fs.DurationVar(&l.HAUpdateTimeout, FlagHAUpdateTimeout, 15*time.Second, "How old the elected replica's last-seen time may get before a distributor refreshes it in the gossiped election state; smaller means more gossip traffic.")
	fs.DurationVar(&l.HAUpdateTimeoutJitterMax, FlagHAUpdateTimeoutJitterMax, 5*time.Second, "Largest random extra delay a distributor adds to update-timeout, so that distributors do not all refresh the same cluster at once.")
}

// validateHA checks the HA-pair dedup limits.
func (l *Limits) validateHA() error {
	switch {
	case l.HAClusterLabel == "" || !utf8.ValidString(l.HAClusterLabel) || l.HAClusterLabel == "__name__":
		return fmt.Errorf("-%s must be a label name other than __name__, got %q", FlagHAClusterLabel, l.HAClusterLabel)
	case l.HAReplicaLabel == "" || !utf8.ValidString(l.HAReplicaLabel) || l.HAReplicaLabel == "__name__":
		return fmt.Errorf("-%s must be a label name other than __name__, got %q", FlagHAReplicaLabel, l.HAReplicaLabel)
	case l.HAClusterLabel == l.HAReplicaLabel:
		return fmt.Errorf("-%s and -%s must differ, both are %q", FlagHAClusterLabel, FlagHAReplicaLabel, l.HAClusterLabel)
	case l.HAMaxClusters < 0:
		return fmt.Errorf("-%s must not be negative, got %d", FlagHAMaxClusters, l.HAMaxClusters)
	case l.HAUpdateTimeout <= 0:
		return fmt.Errorf("-%s must be positive, got %s", FlagHAUpdateTimeout, l.HAUpdateTimeout)
	case l.HAUpdateTimeoutJitterMax < 0:
		return fmt.Errorf("-%s must not be negative, got %s", FlagHAUpdateTimeoutJitterMax, l.HAUpdateTimeoutJitterMax)
	case l.HAFailoverTimeout < l.HAUpdateTimeout+l.HAUpdateTimeoutJitterMax+time.Second:
		// Else a live elected replica could look silent between two refreshes.
		return fmt.Errorf("-%s (%s) must be at least -%s + -%s + 1s (%s)", FlagHAFailoverTimeout, l.HAFailoverTimeout,
			FlagHAUpdateTimeout, FlagHAUpdateTimeoutJitterMax, l.HAUpdateTimeout+l.HAUpdateTimeoutJitterMax+time.Second)
	}
	return nil
}

// LocalSeriesLimit is one ingester's share of a cluster-wide series limit:
// global × replicationFactor / ingesters, as Mimir computes it (each series
// is on replicationFactor of the ingesters, spread evenly by the ring's
// tokens). 0 means no limit; a positive global limit never becomes 0.
// Unknown replicationFactor or ingesters (< 1) count as 1.
func LocalSeriesLimit(global, replicationFactor, ingesters int) int {
	if global <= 0 {
		return 0
	}
	replicationFactor, ingesters = max(replicationFactor, 1), max(ingesters, 1)
	if replicationFactor > ingesters {
		replicationFactor = ingesters // each ingester has every series
	}
	return max(1, int(int64(global)*int64(replicationFactor)/int64(ingesters)))
}

// LabelSet is a set of label names and values, in YAML a mapping. It is
// comparable (Limits are compared), held as its sorted pairs.
type LabelSet struct {
	pairs string // name \xff value \xff ..., sorted by name
}

// NewLabelSet returns the set of m's pairs.
func NewLabelSet(m map[string]string) LabelSet {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0xff)
		b.WriteString(m[n])
		b.WriteByte(0xff)
	}
	return LabelSet{pairs: b.String()}
}

// Map returns the pairs; nil for an empty set.
func (s LabelSet) Map() map[string]string {
	if s.pairs == "" {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(s.pairs, "\xff"), "\xff")
	m := make(map[string]string, len(parts)/2)
	for i := 0; i+1 < len(parts); i += 2 {
		m[parts[i]] = parts[i+1]
	}
	return m
}

// IsZero reports whether s is empty (for omitempty).
func (s LabelSet) IsZero() bool { return s.pairs == "" }

// MarshalYAML writes s as a mapping.
func (s LabelSet) MarshalYAML() (any, error) {
	m := s.Map()
	if m == nil {
		return map[string]string{}, nil
	}
	return m, nil
}

// UnmarshalYAML reads a mapping of label names to values.
func (s *LabelSet) UnmarshalYAML(n *yaml.Node) error {
	var m map[string]string
	if err := n.Decode(&m); err != nil {
		return err
	}
	*s = NewLabelSet(m)
	return nil
}
