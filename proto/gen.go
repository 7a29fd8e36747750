package proto

//go:generate protoc --proto_path=ingesterpb --go_out=ingesterpb --go_opt=paths=source_relative --go-grpc_out=ingesterpb --go-grpc_opt=paths=source_relative ingester.proto
