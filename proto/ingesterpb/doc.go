// Package ingesterpb is the ingester's gRPC contract: distributors push
// series to ingesters, queriers read series, chunks, labels, metadata,
// exemplars and statistics from them.
//
// Flow: distributor --Push--> ingester --QueryStream/LabelNames/...--> querier.
// Owns: ingester.proto and its generated Go code (committed), the error
// classes that travel in a gRPC status's details, and the conversion of
// PromQL matchers to and from their messages.
// Does not: hold logic beyond those conversions.
package ingesterpb
