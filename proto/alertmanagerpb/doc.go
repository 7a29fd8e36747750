// Package alertmanagerpb is the Alertmanager's gRPC contract between the
// replicas of the alertmanager module: a tenant's API requests forwarded
// to the replicas that own it, its silences and notification log
// replicated between them, and the whole state a starting replica reads.
//
// Flow: any replica --HandleRequest--> the tenant's owners;
// owner --UpdateState--> the tenant's other owners; starting owner
// --ReadState--> another owner.
// Owns: alertmanager.proto and its generated Go code (committed).
// Does not: hold logic.
package alertmanagerpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative alertmanager.proto
