// Package promapi is what every server of the Prometheus HTTP API shares:
// the parsing of its parameters, its JSON envelope and encoders, its error
// types and their status codes.
//
// Flow: Grafana, the web UI --HTTP /api/v1/*--> query-frontend, querier,
// ruler --promapi--> the same bytes Prometheus writes.
// Owns: parameter parsing with Prometheus' error messages (time, duration,
// start/end/step, match[], limit, lookback_delta, stats); the envelope
// {"status","data","errorType","error","warnings","infos"} and encoders of
// PromQL values, label sets, metadata and exemplars that write exactly
// Prometheus' bytes without its global jsoniter registrations; ErrorType,
// its status codes, Classify (the engine's and context's error classes) and
// TenantError (401 unauthorized, 403 forbidden, 429 too_many_requests);
// ExprLimits (cost.go: an expression's length and operators checked before
// parsing, its subqueries' steps before evaluation); Handler, which serves a
// function's Result compressed; buildinfo; and WriteAuthError, which
// answers the refusals of tenant.Resolver.Middleware in JSON on the API's
// paths and in plain text elsewhere.
// Does not: run queries or know any storage: the error classes of a
// backend (ingesters unavailable, damaged blocks) are its caller's, mapped
// onto ErrorType there (querier/api_errors.go).
package promapi
