package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestQuickstartEndToEnd runs run-local.sh, what `make example-ml` runs,
// with real processes: the built strata, the example service, and Debian's
// prometheus with this folder's prometheus.yml and rules.yml (host names
// rewritten to loopback ports, intervals shortened to 1s), and Debian's
// prometheus-alertmanager where installed. Every dashboard query must
// return data from Strata, so must the recording rules; after
// POST /drift?level=0.8 Strata must see the accuracy below the alert's
// threshold and the ModelAccuracyLow alert pending.
func TestQuickstartEndToEnd(t *testing.T) {
	procs.LookPathT(t, "prometheus", "prometheus")
	dir := t.TempDir()
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	strataBin, err := procs.BuildStrata(dir)
	require.NoError(t, err)
	step("strata built")
	ports := map[string]int{}
	env := []string{"STRATA_BIN=" + strataBin, "SCRAPE_INTERVAL=1s", "RULE_INTERVAL=1s", "LOAD_RATE=50", "TMPDIR=" + dir}
	for _, name := range []string{"STRATA_PORT", "STRATA_GRPC_PORT", "STRATA_GOSSIP_PORT", "MODEL_PORT", "PROM_PORT", "AM_PORT"} {
		p, err := procs.FreePort()
		require.NoError(t, err)
		ports[name] = p
		env = append(env, fmt.Sprintf("%s=%d", name, p))
	}
	script, err := filepath.Abs("run-local.sh")
	require.NoError(t, err)
	run := procs.StartT(t, procs.Spec{Name: "run-local", Path: script, Dir: dir, Env: env})
	// The script stops its children on SIGTERM, Prometheus first (it flushes
	// to Strata); give it the time before procs' own cleanup kills it.
	t.Cleanup(func() {
		if err := run.Stop(time.Minute); err != nil {
			t.Errorf("stop run-local.sh: %v", err)
		}
	})
	strataURL := fmt.Sprintf("http://127.0.0.1:%d", ports["STRATA_PORT"])
	promURL := fmt.Sprintf("http://127.0.0.1:%d", ports["PROM_PORT"])
	procs.WaitHTTPT(t, run, promURL+"/-/ready", 2*time.Minute) // run-local.sh starts Prometheus last
	step("run-local.sh ready")

	// The configs Prometheus runs are the rewritten ones.
	resp, err := http.Get(promURL + "/api/v1/status/config")
	require.NoError(t, err)
	cfg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	for _, want := range []string{"scrape_interval: 1s", fmt.Sprintf("127.0.0.1:%d", ports["MODEL_PORT"]), strataURL + "/api/v1/push"} {
		require.Contains(t, string(cfg), want)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	queries := dashboardQueries(t, "15s")
	for _, q := range []string{"job:prediction_count:rate1m", "job:prediction_errors:ratio_rate1m",
		"job:model_inference_time_seconds:p99_rate1m", "job:model_inference_time_seconds:p50_rate1m"} {
		queries = append(queries, panelQuery{panel: "recording rule", expr: q})
	}
	for _, q := range queries {
		err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			return hasFiniteSample(ctx, strataURL, q.expr)
		})
		require.NoError(t, err, "panel %q query %s: %s", q.panel, q.refID, q.expr)
	}
	step(fmt.Sprintf("%d queries answered", len(queries)))

	resp, err = http.Post(fmt.Sprintf("http://127.0.0.1:%d/drift?level=0.8", ports["MODEL_PORT"]), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, expr := range []string{`model_accuracy < 0.8`, `ALERTS{alertname="ModelAccuracyLow"}`} {
		err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			return hasFiniteSample(ctx, strataURL, expr)
		})
		require.NoError(t, err, "after drift: %s", expr)
	}
	step("drift seen")
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
