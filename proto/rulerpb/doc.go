// Package rulerpb is the ruler's gRPC contract: a ruler asked for a
// tenant's rules or alerts asks every other ruler for the state of the
// tenant's groups it evaluates.
//
// Flow: ruler (answering /api/v1/rules, /api/v1/alerts) --Rules--> every ACTIVE ruler.
// Owns: ruler.proto and its generated Go code (committed).
// Does not: hold logic.
package rulerpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative ruler.proto
