// Package limits holds the per-tenant limits every component enforces.
//
// Flow: the distributor checks write limits (validation, ingestion rate)
// before sharding, the ingester checks series limits when its TSDB creates
// a series, the querier checks query limits. The runtime overrides file
// (-runtime-config.file, reloaded every -runtime-config.reload-period)
// replaces any limit for any tenant without a restart.
// Owns: the Limits struct, its flags (the defaults for every tenant), the
// runtime overrides file (strict YAML, a bad file keeps the last good one)
// and the Overrides lookup that gives one tenant's effective limits, lock-
// and allocation-free (an atomic pointer to an immutable map); GET
// /runtime_config shows them.
// Does not: count usage (each component counts what it enforces).
package limits
