package limits

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func defaults(t *testing.T) Limits {
	var l Limits
	l.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return l
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Limits)
		wantErr string
	}{
		{"defaults", func(*Limits) {}, ""},
		{"no labels", func(l *Limits) { l.MaxLabelNamesPerSeries = 0 }, "-validation.max-label-names-per-series must be at least 1, got 0"},
		{"name length", func(l *Limits) { l.MaxLabelNameLength = 0 }, "-validation.max-length-label-name"},
		{"value length", func(l *Limits) { l.MaxLabelValueLength = -1 }, "-validation.max-length-label-value"},
		{"metadata length", func(l *Limits) { l.MaxMetadataLength = 0 }, "-validation.max-metadata-length"},
		{"negative future", func(l *Limits) { l.CreationGracePeriod = -time.Second }, "-validation.create-grace-period must not be negative"},
		{"negative past", func(l *Limits) { l.PastGracePeriod = -time.Second }, "-validation.past-grace-period"},
		{"negative exemplars", func(l *Limits) { l.MaxExemplarsPerSeries = -1 }, "-validation.max-exemplars-per-series"},
		{"negative rate", func(l *Limits) { l.IngestionRate = -1 }, "-distributor.ingestion-rate-limit must not be negative"},
		{"rate without burst", func(l *Limits) { l.IngestionRate, l.IngestionBurstSize = 10, 0 }, "-distributor.ingestion-burst-size must be at least 1 when -distributor.ingestion-rate-limit is set"},
		{"burst without rate", func(l *Limits) { l.IngestionBurstSize = 0 }, ""},
		{"request rate without burst", func(l *Limits) { l.RequestRate, l.RequestBurstSize = 10, 0 }, "-distributor.request-burst-size must be at least 1 when -distributor.request-rate-limit is set"},
		{"negative request rate", func(l *Limits) { l.RequestRate = -1 }, "-distributor.request-rate-limit must not be negative"},
		{"strategy", func(l *Limits) { l.IngestionRateStrategy = "cluster" }, `-distributor.ingestion-rate-limit-strategy must be "local" or "global", got "cluster"`},
		{"negative series", func(l *Limits) { l.MaxGlobalSeriesPerUser = -1 }, "-ingester.max-global-series-per-user"},
		{"negative series per metric", func(l *Limits) { l.MaxGlobalSeriesPerMetric = -1 }, "-ingester.max-global-series-per-metric"},
		{"negative fetched series", func(l *Limits) { l.MaxFetchedSeriesPerQuery = -1 }, "-querier.max-fetched-series-per-query"},
		{"negative fetched samples", func(l *Limits) { l.MaxFetchedSamplesPerQuery = -1 }, "-querier.max-fetched-samples-per-query"},
		{"negative out-of-order window", func(l *Limits) { w := -time.Minute; l.OutOfOrderTimeWindow = &w }, "out_of_order_time_window must not be negative"},
		{"negative max exemplars", func(l *Limits) { n := -1; l.MaxExemplars = &n }, "max_exemplars must not be negative"},
		{"negative max metadata", func(l *Limits) { n := -1; l.MaxMetadataPerUser = &n }, "max_metadata_per_user must not be negative"},
		{"negative metadata per metric", func(l *Limits) { l.MaxMetadataPerMetric = -1 }, "-ingester.max-metadata-per-metric must not be negative, got -1"},
		{"no metadata per metric limit", func(l *Limits) { l.MaxMetadataPerMetric = 0 }, ""},
		{"negative query length", func(l *Limits) { l.MaxQueryLength = -time.Second }, "-limits.max-query-length"},
		{"negative lookback", func(l *Limits) { l.MaxQueryLookback = -time.Second }, "-querier.max-query-lookback"},
		{"negative timeout", func(l *Limits) { l.QueryTimeout = -time.Second }, "-limits.query-timeout"},
		{"negative concurrency", func(l *Limits) { l.MaxConcurrentQueries = -1 }, "-querier.max-concurrent-queries-per-tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := defaults(t)
			tc.mod(&l)
			err := l.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestOverridesGiveDefaults(t *testing.T) {
	l := defaults(t)
	o := NewOverrides(l)
	if got := o.For("tenant-a"); *got != l {
		t.Fatalf("For() = %+v, want the defaults %+v", *got, l)
	}
}

func TestMaxMetadataPerMetric(t *testing.T) {
	def := defaults(t)
	if def.MaxMetadataPerMetric != 10 {
		t.Fatalf("default max_metadata_per_metric = %d, want 10", def.MaxMetadataPerMetric)
	}
	for _, tc := range []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"inherited", "overrides:\n  a:\n    ingestion_rate: 5\n", 10, ""},
		{"raised", "overrides:\n  a:\n    max_metadata_per_metric: 50\n", 50, ""},
		{"no limit", "overrides:\n  a:\n    max_metadata_per_metric: 0\n", 0, ""},
		{"negative", "overrides:\n  a:\n    max_metadata_per_metric: -1\n", 0, `overrides of tenant "a": -ingester.max-metadata-per-metric must not be negative`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOverrides([]byte(tc.in), def)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseOverrides() = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := got["a"].MaxMetadataPerMetric; n != tc.want {
				t.Fatalf("max_metadata_per_metric = %d, want %d", n, tc.want)
			}
		})
	}
}

func TestRulerOverrides(t *testing.T) {
	got, err := ParseOverrides([]byte(`
overrides:
  team-a:
    ruler_max_rule_groups_per_tenant: 3
    ruler_alertmanager_url: http://am-a:9093
    ruler_external_labels: {cluster: eu, team: a}
    ruler_evaluation_timeout: 30s
`), defaults(t))
	if err != nil {
		t.Fatal(err)
	}
	l := got["team-a"]
	if l.RulerMaxRuleGroupsPerTenant != 3 || l.RulerAlertmanagerURL != "http://am-a:9093" || l.RulerMaxRulesPerRuleGroup != 20 || l.RulerEvaluationTimeout != 30*time.Second {
		t.Fatalf("ruler limits = %+v", l)
	}
	if m := l.RulerExternalLabels.Map(); len(m) != 2 || m["cluster"] != "eu" || m["team"] != "a" {
		t.Fatalf("external labels = %v", m)
	}
	if NewLabelSet(map[string]string{"team": "a", "cluster": "eu"}) != l.RulerExternalLabels {
		t.Fatal("a label set is not equal to itself built in another order")
	}
	if _, err := ParseOverrides([]byte("overrides:\n  team-a:\n    ruler_evaluation_concurrency: 0\n"), defaults(t)); err == nil || !strings.Contains(err.Error(), "-ruler.tenant-evaluation-concurrency must be at least 1") {
		t.Fatalf("concurrency 0: err = %v", err)
	}
}

func TestNotificationRateOverrides(t *testing.T) {
	var l Limits
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	l.RegisterFlags(fs)
	if err := fs.Parse([]string{"-alertmanager.notification-rate-limit=2", `-alertmanager.notification-rate-limit-per-integration={"email": 0.5}`}); err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := ParseOverrides([]byte(`
overrides:
  team-a:
    alertmanager_notification_rate_limit_per_integration: {webhook: 1, slack: 0}
  team-b:
    alertmanager_notification_rate_limit: 0
`), l)
	if err != nil {
		t.Fatal(err)
	}
	a, b := got["team-a"], got["team-b"]
	if r, ok := a.AlertmanagerNotificationRateLimitPerIntegration.Get("webhook"); !ok || r != 1 {
		t.Fatalf("team-a webhook = %v %v, want 1", r, ok)
	}
	if _, ok := a.AlertmanagerNotificationRateLimitPerIntegration.Get("email"); ok {
		t.Fatal("team-a's map kept the default's email: an override replaces the whole map")
	}
	if r, ok := b.AlertmanagerNotificationRateLimitPerIntegration.Get("email"); !ok || r != 0.5 || b.AlertmanagerNotificationRateLimit != 0 {
		t.Fatalf("team-b = %v %v, rate %v; want the default map and rate 0", r, ok, b.AlertmanagerNotificationRateLimit)
	}
	if l.AlertmanagerNotificationRateLimitPerIntegration != NewRateMap(map[string]float64{"email": 0.5}) {
		t.Fatal("the defaults changed under an override")
	}
	if _, err := ParseOverrides([]byte("overrides:\n  team-a:\n    alertmanager_notification_rate_limit_per_integration: {webhook: -1}\n"), l); err == nil || !strings.Contains(err.Error(), `rate of "webhook" must be a non-negative number`) {
		t.Fatalf("negative rate: err = %v", err)
	}
	if err := fs.Set("alertmanager.notification-rate-limit-per-integration", "webhook=1"); err == nil {
		t.Fatal("a flag value that is not JSON was taken")
	}
}
