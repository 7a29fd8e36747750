package clustertest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// Push sends series to the first running distributor as one remote-write
// request of tenant and requires it accepted.
func (c *Cluster) Push(t testing.TB, tenantID string, series []prompb.TimeSeries) {
	t.Helper()
	code, body := c.TryPush(t, tenantID, &prompb.WriteRequest{Timeseries: series})
	require.Less(t, code, 300, "push of tenant %s: %d %s", tenantID, code, body)
}

// TryPush sends wr to the first running distributor's push handler and
// returns the HTTP status and body.
func (c *Cluster) TryPush(t testing.TB, tenantID string, wr *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := wr.Marshal()
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/push", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("X-Scope-OrgID", tenantID)
	rec := httptest.NewRecorder()
	c.Distributor(t).PushHandler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}
