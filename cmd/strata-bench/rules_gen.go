package main

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// rulesTenantLabel is the label -mode=rules adds to every series: each
// tenant's rules select their own tenant's series with it, so the one
// Prometheus that holds every tenant's series evaluates the very same rule
// text over the same series as Strata does per tenant.
const rulesTenantLabel = "bench_tenant"

// ruleTemplate is one typical recording rule over the data's families;
// %[1]s is the tenant, %[2]s the range. Every aggregation keeps
// bench_tenant, so results of different tenants never collide in the one
// Prometheus. The data has no histogram family: quantile over the
// per-series rates stands in for histogram_quantile.
type ruleTemplate struct {
	name, expr string
}

var ruleTemplates = []ruleTemplate{
	{"cpu_busy_rate", `sum by (bench_tenant, job) (rate(node_cpu_seconds_total{bench_tenant="%[1]s",mode!="idle"}[%[2]s]))`},
	{"net_rx_rate", `sum by (bench_tenant, instance, device) (rate(node_network_receive_bytes_total{bench_tenant="%[1]s"}[%[2]s]))`},
	{"net_tx_rate", `sum by (bench_tenant, instance) (rate(node_network_transmit_bytes_total{bench_tenant="%[1]s"}[%[2]s]))`},
	{"disk_read_rate_p99", `quantile by (bench_tenant, job) (0.99, rate(node_disk_read_bytes_total{bench_tenant="%[1]s"}[%[2]s]))`},
	{"disk_write_rate", `sum by (bench_tenant, instance) (rate(node_disk_written_bytes_total{bench_tenant="%[1]s"}[%[2]s]))`},
	{"fs_avail_avg", `avg by (bench_tenant, instance, mountpoint) (avg_over_time(node_filesystem_avail_bytes{bench_tenant="%[1]s"}[%[2]s]))`},
	{"fs_used_ratio", `1 - sum by (bench_tenant, instance) (node_filesystem_avail_bytes{bench_tenant="%[1]s"}) / sum by (bench_tenant, instance) (node_filesystem_size_bytes{bench_tenant="%[1]s"})`},
	{"interrupts_increase", `sum by (bench_tenant, job) (increase(node_interrupts_total{bench_tenant="%[1]s"}[%[2]s]))`},
	{"temp_max", `max by (bench_tenant, instance) (max_over_time(node_hwmon_temp_celsius{bench_tenant="%[1]s"}[%[2]s]))`},
	{"softnet_top5", `topk(5, sum by (bench_tenant, instance, cpu) (rate(node_softnet_processed_total{bench_tenant="%[1]s"}[%[2]s])))`},
}

// ruleWindows are the ranges the rules cycle through; the data's history
// (-rules.history) must cover the longest.
var ruleWindows = []string{"1m", "2m", "3m", "4m", "5m"}

// ruleFile is a Prometheus rule file of recording rules.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string          `yaml:"name"`
	Interval string          `yaml:"interval"`
	Rules    []recordingRule `yaml:"rules"`
}

type recordingRule struct {
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

// tenantRuleGroups are one tenant's perTenant rules in groups of
// groupSize: rule i uses template i mod 10 and window (i/10) mod 5, so
// each group of 10 holds every template once. Group names carry the
// tenant, so every tenant's groups fit in one Prometheus rule file.
func tenantRuleGroups(tenant string, perTenant, groupSize int, interval time.Duration) []ruleGroup {
	var gs []ruleGroup
	for i := range perTenant {
		if i%groupSize == 0 {
			gs = append(gs, ruleGroup{Name: fmt.Sprintf("%s-g%03d", tenant, i/groupSize), Interval: promDuration(interval)})
		}
		t := ruleTemplates[i%len(ruleTemplates)]
		w := ruleWindows[(i/len(ruleTemplates))%len(ruleWindows)]
		g := &gs[len(gs)-1]
		g.Rules = append(g.Rules, recordingRule{
			Record: fmt.Sprintf("bench:%s:%s_r%d", t.name, w, i),
			Expr:   fmt.Sprintf(t.expr, tenant, w),
		})
	}
	return gs
}

// marshalRuleFile renders groups as a rule file (or, for one group, the
// body of POST /config/v1/rules/{namespace} when given the group alone).
func marshalRuleFile(v any) ([]byte, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("render rule file: %w", err)
	}
	return b, nil
}

// promDuration formats d the way Prometheus' duration parser accepts (no "1m0s").
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}
