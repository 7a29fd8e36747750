// Package limits holds the per-tenant limits every component enforces.
//
// Flow: the distributor checks write limits before sharding, the ingester
// checks series limits on append, the querier checks query limits.
// Owns: the Limits struct, its flags (the defaults for every tenant) and the
// Overrides lookup that gives one tenant's effective limits.
// Does not: count usage (each component counts what it enforces).
package limits
