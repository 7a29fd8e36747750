package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// TestClusterSecret: with -auth.cluster-secret-file the components of the
// process still talk to each other over gRPC (a push is stored and read
// back), and a gRPC client without the secret, or with another, is
// refused by the ingester before it reads or writes anything.
func TestClusterSecret(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "cluster-secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("# primary first\nthis-is-the-cluster-secret-1\nthe-previous-secret-still-ok\n"), 0o600))
	s := startStack(t, filepath.Join(dir, "data"), "-auth.cluster-secret-file="+secretFile)

	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  lbls("__name__", "secret_test", "job", "a"),
		Samples: []prompb.Sample{{Timestamp: time.Now().Add(-time.Minute).UnixMilli(), Value: 7}},
	}}}
	raw, err := req.Marshal()
	require.NoError(t, err)
	resp, err := http.Post(s.base+"/api/v1/push", "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(body))
	resp, err = http.Get(s.base + "/api/v1/query?query=secret_test")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), `"7"`)

	// The ingester's gRPC address, from the ring page.
	r, err := http.NewRequest(http.MethodGet, s.base+"/ring", nil)
	require.NoError(t, err)
	r.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(r)
	require.NoError(t, err)
	var ring struct {
		Instances []struct {
			Addr string `json:"addr"`
		} `json:"instances"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ring))
	resp.Body.Close()
	require.Len(t, ring.Instances, 1)
	addr := ring.Instances[0].Addr

	call := func(opts ...grpc.DialOption) error {
		cc, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		require.NoError(t, err)
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = ingesterpb.NewIngesterClient(cc).LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: "anonymous", EndMs: time.Now().UnixMilli()})
		return err
	}
	err = call()
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "no cluster credential")

	other := filepath.Join(dir, "other-secret")
	require.NoError(t, os.WriteFile(other, []byte("somebody-elses-secret-value\n"), 0o600))
	wrong, err := auth.LoadClusterSecrets(other)
	require.NoError(t, err)
	err = call(wrong.DialOption())
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "wrong cluster credential")

	// The second secret of the file is accepted too (rotation).
	previous := filepath.Join(dir, "previous-secret")
	require.NoError(t, os.WriteFile(previous, []byte("the-previous-secret-still-ok\n"), 0o600))
	prev, err := auth.LoadClusterSecrets(previous)
	require.NoError(t, err)
	require.NoError(t, call(prev.DialOption()))
}
