package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The cluster credential authenticates components to each other on gRPC
// where mutual TLS is not set up: with -auth.cluster-secret-file every
// process sends the file's first secret on every call and accepts only
// calls carrying one of its secrets. Without it anyone who reaches a
// gRPC port reads every tenant's series and pushes past all validation.
//
// Rotation, one rolling restart per step: add the new secret as the
// second line everywhere (accepted, not sent), move it to the first
// (sent), then remove the old one. The secret travels in gRPC metadata:
// on a network others can watch, use it with TLS (-server.grpc-tls-*).

const clusterSecretHeader = "authorization"

// minSecretBytes keeps a secret out of guessing range.
const minSecretBytes = 16

// ClusterSecrets are the secrets of -auth.cluster-secret-file: the first
// is sent, every one is accepted.
type ClusterSecrets struct {
	secrets [][]byte
}

// LoadClusterSecrets reads path: one secret a line, blank lines and lines
// starting with # ignored, each at least 16 bytes.
func LoadClusterSecrets(path string) (*ClusterSecrets, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read -auth.cluster-secret-file: %w", err)
	}
	s := &ClusterSecrets{}
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < minSecretBytes {
			return nil, fmt.Errorf("-auth.cluster-secret-file line %d: secret is %d bytes, want at least %d (head -c 32 /dev/urandom | base64)", i+1, len(line), minSecretBytes)
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("-auth.cluster-secret-file line %d: secret contains whitespace", i+1)
		}
		s.secrets = append(s.secrets, []byte(line))
	}
	if len(s.secrets) == 0 {
		return nil, errors.New("-auth.cluster-secret-file holds no secret")
	}
	return s, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials: every call
// carries the first secret.
func (s *ClusterSecrets) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{clusterSecretHeader: "Bearer " + string(s.secrets[0])}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// secret may go over plain connections on a private network.
func (s *ClusterSecrets) RequireTransportSecurity() bool { return false }

// check reports whether ctx's call carries one of the secrets.
func (s *ClusterSecrets) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(clusterSecretHeader)
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "no cluster credential: every gRPC call between components must carry the secret of -auth.cluster-secret-file")
	}
	got, ok := strings.CutPrefix(vals[0], "Bearer ")
	if ok {
		for _, want := range s.secrets {
			if subtle.ConstantTimeCompare([]byte(got), want) == 1 {
				return nil
			}
		}
	}
	return status.Error(codes.Unauthenticated, "wrong cluster credential: the caller's -auth.cluster-secret-file holds no secret this process accepts")
}

// ServerOptions are the interceptors that refuse calls without a secret.
func (s *ClusterSecrets) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := s.check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := s.check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// DialOption makes a client send the first secret on every call.
func (s *ClusterSecrets) DialOption() grpc.DialOption { return grpc.WithPerRPCCredentials(s) }
