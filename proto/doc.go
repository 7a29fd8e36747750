// Package proto holds the gRPC contracts between Strata's components.
//
// Flow: distributor --Push--> ingester --QueryStream/Series/...--> querier;
// ruler --Rules--> ruler.
// Owns: the .proto files and their generated Go code, committed so that no
// build needs protoc; `make proto` regenerates them.
// Does not: hold logic. Sub-packages are generated code plus tiny helpers.
package proto
