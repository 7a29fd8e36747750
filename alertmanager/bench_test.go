package alertmanager

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/tenant"
)

// BenchmarkPostAlerts: a batch of 10 firing alerts posted to a tenant's
// Alertmanager through the API handler, as the ruler posts them (one
// process, no ring).
func BenchmarkPostAlerts(b *testing.B) {
	var cfg Config
	fs := flag.NewFlagSet("b", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	var lim limits.Limits
	lim.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		b.Fatal(err)
	}
	cfg.DataDir = b.TempDir()
	am, err := New(cfg, Deps{Bucket: objstore.NewInMemBucket(), Limits: limits.NewOverrides(lim), Tenants: tenant.Resolver{MultitenancyEnabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- am.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for am.CheckReady(ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	do := func(h http.Handler, method, path, body string) int {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set(tenant.Header, "t1")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := do(am.ConfigHandler(), http.MethodPost, "/api/v1/alerts", webhookConfig("https://hooks.example.com/a")); code != http.StatusCreated {
		b.Fatalf("upload: %d", code)
	}
	var alerts []map[string]any
	for i := range 10 {
		alerts = append(alerts, map[string]any{"labels": map[string]string{"alertname": fmt.Sprint("A", i), "severity": "page"}})
	}
	body, _ := json.Marshal(alerts)
	api := am.APIHandler()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if code := do(api, http.MethodPost, "/alertmanager/api/v2/alerts", string(body)); code != http.StatusOK {
			b.Fatalf("post: %d", code)
		}
	}
}
