package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// pushAs sends one small request for tenant and returns the status and body.
func pushAs(t *testing.T, base, tenantID string, series, samples int, t0 time.Time) (int, string) {
	t.Helper()
	var req prompb.WriteRequest
	for s := range series {
		ts := prompb.TimeSeries{Labels: lbls("__name__", "overrides_test", "series", strings.Repeat("x", s+1))}
		for i := range samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli(), Value: float64(i)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return pushRaw(t, base, tenantID, &req)
}

// TestStackRuntimeOverrides: a tenant's override in -runtime-config.file
// limits only that tenant, shows at /runtime_config, and an edit of the
// file takes effect without a restart.
func TestStackRuntimeOverrides(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  small:\n    ingestion_rate: 1\n    ingestion_burst_size: 20\n"), 0o644))
	s := startStack(t, t.TempDir(), "-auth.multitenancy-enabled", "-runtime-config.file="+file, "-runtime-config.reload-period=100ms")
	t0 := time.Now().Add(-time.Minute)

	code, body := pushAs(t, s.base, "big", 10, 10, t0)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = pushAs(t, s.base, "small", 1, 5, t0)
	require.Equal(t, http.StatusNoContent, code, body)
	// 30 samples cannot fit a burst of 20: never, so 400, not 429.
	code, body = pushAs(t, s.base, "small", 3, 10, t0.Add(time.Minute))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `override "ingestion_burst_size"`)
	// 18 samples fit the burst but not the ~15 left of it (1/s refill): 429.
	code, body = pushAs(t, s.base, "small", 3, 6, t0.Add(2*time.Minute))
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Contains(t, body, `tenant "small"`)
	require.Contains(t, body, "[strata-tenant-rate-limit]")

	cfgReq, err := http.NewRequest(http.MethodGet, s.base+"/runtime_config", nil)
	require.NoError(t, err)
	cfgReq.Header.Set("X-Scope-OrgID", "small")
	resp, err := http.DefaultClient.Do(cfgReq)
	require.NoError(t, err)
	cfgBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(cfgBody), "small:")

	// Lift the limit in the file; the next reload applies it.
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  small:\n    ingestion_rate: 1000000\n    ingestion_burst_size: 1000000\n"), 0o644))
	require.Eventually(t, func() bool {
		code, _ := pushAs(t, s.base, "small", 3, 10, t0.Add(3*time.Minute))
		return code == http.StatusNoContent
	}, 30*time.Second, 50*time.Millisecond, "the edited override never took effect")

	// The other tenant's data was never touched by any of this.
	got := queryStrataAs(t, s.base, "big", "count_over_time(overrides_test[1h])", time.Now())
	require.Len(t, normalise(t, got.Result), 10)
}

// queryStrataAs runs an instant query as tenantID.
func queryStrataAs(t *testing.T, base, tenantID, q string, at time.Time) apiResult {
	t.Helper()
	form := url.Values{"query": {q}, "time": {at.Format(time.RFC3339Nano)}}
	hr, err := http.NewRequest(http.MethodPost, base+"/api/v1/query", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var env struct{ Data apiResult }
	require.NoError(t, json.Unmarshal(b, &env), string(b))
	return env.Data
}

// TestStackMetadataOverTenantLimit: metadata of more metric families than a
// tenant's max_metadata_per_user gets 400 naming the limit and the override,
// as the README's limits table says; the samples of the same push and the
// metadata kept before are intact.
func TestStackMetadataOverTenantLimit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  small:\n    max_metadata_per_user: 1\n"), 0o644))
	s := startStack(t, t.TempDir(), "-auth.multitenancy-enabled", "-runtime-config.file="+file)
	now := time.Now()
	push := func(families ...string) (int, string) {
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  lbls("__name__", families[len(families)-1]),
			Samples: []prompb.Sample{{Timestamp: now.UnixMilli(), Value: 1}},
		}}}
		for _, f := range families {
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: f, Help: "Help of " + f + "."})
		}
		return pushRaw(t, s.base, "small", &req)
	}
	code, body := push("first")
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = push("first", "second")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `override "max_metadata_per_user"`)
	require.Contains(t, body, "[strata-max-metadata-per-user]")

	got := queryStrataAs(t, s.base, "small", "second", now)
	require.Len(t, normalise(t, got.Result), 1, "the sample of the refused push is stored")
	hr, err := http.NewRequest(http.MethodGet, s.base+"/api/v1/metadata", nil)
	require.NoError(t, err)
	hr.Header.Set("X-Scope-OrgID", "small")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	md, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(md))
	require.Contains(t, string(md), `"first":[{"type":"gauge","unit":"","help":"Help of first."}]`)
	require.NotContains(t, string(md), `"second"`)
}

// pushRaw sends req for tenantID and returns the status and body.
func pushRaw(t *testing.T, base, tenantID string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, base+"/api/v1/push", bytes.NewReader(snappy.Encode(nil, b)))
	require.NoError(t, err)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Scope-OrgID", tenantID)
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
