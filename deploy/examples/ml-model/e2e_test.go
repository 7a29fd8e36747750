package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestQuickstartEndToEnd runs the quickstart as `make example-ml` does, with
// real processes: the built strata, the example service, and Debian's
// prometheus with this folder's prometheus.yml and rules.yml (host names
// rewritten to loopback, intervals shortened to 1s). Every dashboard query
// must return data from Strata, so must the recording rules; after
// POST /drift?level=0.8 Strata must see the accuracy below the alert's
// threshold and the ModelAccuracyLow alert pending.
//
// Strata runs without multi-tenancy, as in run-local.sh: Debian's
// Prometheus 2.42 does not send remote_write's headers.
func TestQuickstartEndToEnd(t *testing.T) {
	promBin := procs.LookPathT(t, "prometheus", "prometheus")
	dir := t.TempDir()
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	strataBin, err := procs.BuildStrata(dir)
	require.NoError(t, err)
	step("strata built")
	strata := procs.StartStrataT(t, procs.StrataConfig{Bin: strataBin})
	step("strata ready")

	svcBin := filepath.Join(dir, "ml-model")
	out, err := exec.Command("go", "build", "-o", svcBin, ".").CombinedOutput()
	require.NoError(t, err, "go build the example service: %s", out)
	svcAddr, err := procs.FreeAddr()
	require.NoError(t, err)
	svc := procs.StartT(t, procs.Spec{Name: "ml-model", Path: svcBin, Dir: dir,
		Args: []string{"-listen-address=" + svcAddr, "-load.rate=50", "-seed=1"}})
	procs.WaitHTTPT(t, svc, "http://"+svcAddr+"/healthz", 30*time.Second)
	step("service ready")

	promAddr, err := procs.FreeAddr()
	require.NoError(t, err)
	amAddr, err := procs.FreeAddr() // nobody listens: the alerts are read from Strata
	require.NoError(t, err)
	writeRewritten(t, "prometheus.yml", filepath.Join(dir, "prometheus.yml"), []string{
		"ml-model:8080", svcAddr,
		"http://strata:9009", strata.URL,
		"alertmanager:9093", amAddr,
		"scrape_interval: 5s", "scrape_interval: 1s",
		"scrape_timeout: 5s", "scrape_timeout: 1s",
		"evaluation_interval: 15s", "evaluation_interval: 1s",
	})
	writeRewritten(t, "rules.yml", filepath.Join(dir, "rules.yml"), []string{"interval: 15s", "interval: 1s"})
	prom := procs.StartT(t, procs.Spec{Name: "prometheus", Path: promBin, Dir: dir, Args: []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"),
		"--web.listen-address=" + promAddr,
		"--storage.remote.flush-deadline=5s",
	}})
	procs.WaitHTTPT(t, prom, "http://"+promAddr+"/-/ready", 30*time.Second)
	step("prometheus ready")

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	queries := dashboardQueries(t, "15s")
	for _, q := range []string{"job:prediction_count:rate1m", "job:prediction_errors:ratio_rate1m",
		"job:model_inference_time_seconds:p99_rate1m", "job:model_inference_time_seconds:p50_rate1m"} {
		queries = append(queries, panelQuery{panel: "recording rule", expr: q})
	}
	for _, q := range queries {
		err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			return hasFiniteSample(ctx, strata.URL, q.expr)
		})
		require.NoError(t, err, "panel %q query %s: %s", q.panel, q.refID, q.expr)
	}
	step(fmt.Sprintf("%d queries answered", len(queries)))

	resp, err := http.Post("http://"+svcAddr+"/drift?level=0.8", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, expr := range []string{`model_accuracy < 0.8`, `ALERTS{alertname="ModelAccuracyLow"}`} {
		err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			return hasFiniteSample(ctx, strata.URL, expr)
		})
		require.NoError(t, err, "after drift: %s", expr)
	}
	step("drift seen")
}

// writeRewritten copies src to dst with each old string of pairs (old, new,
// old, new, ...) replaced; every old string must occur, so a change of the
// shipped file that the rewrite no longer matches fails here.
func writeRewritten(t *testing.T, src, dst string, pairs []string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	s := string(b)
	for i := 0; i < len(pairs); i += 2 {
		require.Contains(t, s, pairs[i], "%s", src)
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	require.NoError(t, os.WriteFile(dst, []byte(s), 0o644))
}

// hasFiniteSample runs an instant query against Strata's Prometheus API and
// reports whether it returned at least one sample, all finite; otherwise it
// says what it got.
func hasFiniteSample(ctx context.Context, strataURL, expr string) (bool, string) {
	u := strataURL + "/api/v1/query?" + url.Values{"query": {expr}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err.Error()
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" || r.Data.ResultType != "vector" {
		return false, fmt.Sprintf("status %d: %s", resp.StatusCode, body)
	}
	if len(r.Data.Result) == 0 {
		return false, "no series yet"
	}
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return false, fmt.Sprintf("not a finite number: %s", body)
		}
	}
	return true, ""
}
