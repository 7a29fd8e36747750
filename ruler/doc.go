// Package ruler evaluates each tenant's recording and alerting rules.
//
// Flow: rule groups (Prometheus' rule-file format) in the bucket (or in
// -ruler.rule-path) --poll--> ruler --PromQL over querier.Queryable-->
// results --Distributor.Push--> ingesters; alerts --> Alertmanager (v2 API,
// the tenant's X-Scope-OrgID). Rule groups are sharded across rulers by the
// ruler ring on tenant + namespace + group, one owner each. The ruler
// answering /api/v1/rules or /api/v1/alerts asks every ruler --Rules (gRPC)-->
// for the state of the tenant's groups it evaluates.
// Owns: one Prometheus rules.Manager per tenant with the groups this ruler
// owns, the Appendable that turns one group's samples into one push, one
// notifier.Manager per tenant, the rule store, the rule APIs
// (/api/v1/rules, /api/v1/alerts, /config/v1/rules...), the ruler gRPC
// service (rulerpb) and the upload
// validation, strata_ruler_* metrics.
// Does not: store samples (the distributor and ingesters do) or run an
// Alertmanager.
package ruler
