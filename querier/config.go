package querier

import (
	"flag"
	"fmt"
	"time"
)

// Config is the querier's configuration.
type Config struct {
	Timeout                     time.Duration `yaml:"timeout"`
	MaxSamples                  int           `yaml:"max_samples"`
	LookbackDelta               time.Duration `yaml:"lookback_delta"`
	MaxConcurrent               int           `yaml:"max_concurrent"`
	DefaultEvaluationInterval   time.Duration `yaml:"default_evaluation_interval"`
	MaxQueryLength              time.Duration `yaml:"max_query_length"`
	EnableExperimentalFunctions bool          `yaml:"promql_experimental_functions_enabled"`
	QueryIngestersWithin        time.Duration `yaml:"query_ingesters_within"`
	QueryStoreAfter             time.Duration `yaml:"query_store_after"`
	MaxExpressionBytes          int           `yaml:"max_expression_bytes"`
	MaxExpressionOperators      int           `yaml:"max_expression_operators"`
	MaxSubquerySteps            int64         `yaml:"max_subquery_steps"`
	IngesterStragglerGrace      time.Duration `yaml:"ingester_straggler_grace"`
}

// RegisterFlags registers the querier's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Timeout, "querier.timeout", 2*time.Minute, "Longest a PromQL query may run, its wait for a free slot included (Prometheus' --query.timeout).")
	fs.IntVar(&c.MaxSamples, "querier.max-samples", 50_000_000, "Most samples one query may hold in memory at once (Prometheus' --query.max-samples).")
	fs.DurationVar(&c.LookbackDelta, "querier.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample (Prometheus' --query.lookback-delta); the lookback_delta parameter overrides it per query.")
	fs.IntVar(&c.MaxConcurrent, "querier.max-concurrent", 20, "Most PromQL queries this process evaluates at once; more wait for a slot (Prometheus' --query.max-concurrency).")
	fs.DurationVar(&c.DefaultEvaluationInterval, "querier.default-evaluation-interval", time.Minute, "Step of a subquery that gives none, as in rate(x[1h:]) (Prometheus' global evaluation_interval).")
	fs.IntVar(&c.MaxExpressionBytes, "querier.max-expression-bytes", 256<<10, "Longest PromQL expression, in bytes, checked before parsing (a long regular expression of alternatives is the usual large query). 0: no limit.")
	fs.IntVar(&c.MaxExpressionOperators, "querier.max-expression-operators", 1000, "Most binary operators and parentheses in a PromQL expression, checked before parsing: Prometheus' parser takes time quadratic in them (1,000 parse in about 10 ms, 8,000 in 0.3 s) and cannot be stopped. 0: no limit.")
	fs.Int64Var(&c.MaxSubquerySteps, "querier.max-subquery-steps", 11000, "Most steps of a subquery's range divided by its step ([30d:1ms] is 2.6 billion): the engine holds a subquery's points before counting them against -querier.max-samples. 11,000 is Prometheus' bound on a range query's points. 0: no limit.")
	fs.DurationVar(&c.MaxQueryLength, "querier.max-query-length", 0, "Longest time range (end - start) of a range query; 0 allows any.")
	fs.BoolVar(&c.EnableExperimentalFunctions, "querier.promql-experimental-functions-enabled", false, "Allow PromQL's experimental functions (Prometheus' --enable-feature=promql-experimental-functions).")
	fs.DurationVar(&c.IngesterStragglerGrace, "querier.ingester-straggler-grace", 200*time.Millisecond, "Most a read waits for the ingesters still out once those that answered hold every series (2 of 3 replicas at replication factor 3; every zone but one): it waits as long as those answers took, at most this, then cancels the others. A hung ingester costs a read at most this instead of -querier.timeout. 0 cancels them at once.")
	fs.DurationVar(&c.QueryIngestersWithin, "querier.query-ingesters-within", 13*time.Hour, "Ask the ingesters only for the part of a query's range newer than this; keep it at most -ingester.retain-shipped-for (what they still hold) and above -querier.query-store-after (the two overlap so that no block is missed while it is on its way to the bucket index). 0 asks them for every range.")
	fs.DurationVar(&c.QueryStoreAfter, "querier.query-store-after", 12*time.Hour, "Ask the store-gateways (long-term blocks) only for the part of a query's range older than this; newer data is on the ingesters. 0 asks them for every range: set it when ingesters may lose their disks after shipping (-ingester.flush-on-shutdown on ephemeral disks, -target=all without a persistent -data.dir), or the last hours would be missing until they are this old.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return fmt.Errorf("-querier.timeout must be positive, got %s", c.Timeout)
	case c.MaxExpressionBytes < 0 || c.MaxExpressionOperators < 0 || c.MaxSubquerySteps < 0:
		return fmt.Errorf("-querier.max-expression-bytes, -querier.max-expression-operators and -querier.max-subquery-steps must not be negative")
	case c.MaxSamples <= 0:
		return fmt.Errorf("-querier.max-samples must be positive, got %d", c.MaxSamples)
	case c.LookbackDelta <= 0:
		return fmt.Errorf("-querier.lookback-delta must be positive, got %s", c.LookbackDelta)
	case c.MaxConcurrent <= 0:
		return fmt.Errorf("-querier.max-concurrent must be positive, got %d", c.MaxConcurrent)
	case c.DefaultEvaluationInterval < time.Millisecond:
		return fmt.Errorf("-querier.default-evaluation-interval must be at least 1ms, got %s", c.DefaultEvaluationInterval)
	case c.QueryIngestersWithin < 0 || c.QueryStoreAfter < 0:
		return fmt.Errorf("-querier.query-ingesters-within and -querier.query-store-after must not be negative, got %s and %s", c.QueryIngestersWithin, c.QueryStoreAfter)
	case c.QueryIngestersWithin > 0 && c.QueryIngestersWithin <= c.QueryStoreAfter:
		return fmt.Errorf("-querier.query-ingesters-within (%s) must be above -querier.query-store-after (%s): the range between them would be asked of nobody", c.QueryIngestersWithin, c.QueryStoreAfter)
	case c.MaxQueryLength < 0:
		return fmt.Errorf("-querier.max-query-length must not be negative, got %s", c.MaxQueryLength)
	case c.IngesterStragglerGrace < 0:
		return fmt.Errorf("-querier.ingester-straggler-grace must not be negative, got %s", c.IngesterStragglerGrace)
	}
	return nil
}
