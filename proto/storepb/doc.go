// Package storepb is the store-gateway's gRPC contract: queriers ask
// store-gateways for the series, label names and label values of named
// long-term blocks.
//
// Flow: querier --Series/LabelNames/LabelValues--> store-gateway --range reads--> bucket.
// Owns: store.proto and its generated Go code (committed). Matchers, series
// and chunks are the ingester's messages (ingesterpb), so the querier
// decodes chunks from ingesters and from blocks alike.
// Does not: hold logic.
package storepb

//go:generate protoc --proto_path=. --proto_path=../ingesterpb --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative store.proto
