package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// dashboardQuery is one panel of the dashboard the bench replays.
type dashboardQuery struct {
	Name  string
	Query string
	Reps  int
}

// dashboardQueries are the two standard panels: an aggregation over every
// series and one series on its own.
func dashboardQueries(reps int) []dashboardQuery {
	return []dashboardQuery{
		{Name: "all-series", Query: `sum by (job) (rate({cluster="bench"}[5m]))`, Reps: reps},
		{Name: "one-series", Query: `rate(node_cpu_seconds_total{instance="host-00000:9100",cpu="0",mode="idle"}[5m])`, Reps: 4 * reps},
	}
}

// queryResult holds the latencies of one dashboardQuery.
type queryResult struct {
	Name      string
	Latencies []time.Duration
	Series    int // result series of the last answer
	Errors    int
	LastError string `json:",omitempty"`
}

// runQueries replays every query against baseURL/api/v1/query_range as
// Grafana sends it: form POST, start and end floored to the step.
func runQueries(ctx context.Context, client *http.Client, baseURL string, qs []dashboardQuery, end time.Time, rng, step time.Duration) []queryResult {
	end = end.Truncate(step)
	start := end.Add(-rng)
	var out []queryResult
	for _, q := range qs {
		r := queryResult{Name: q.Name}
		for range q.Reps {
			if ctx.Err() != nil {
				break
			}
			t0 := time.Now()
			// Uncached: the figure compared with the other servers is the
			// read path's, not Strata's results cache.
			n, err := queryRange(ctx, client, baseURL, q.Query, start, end, step, noStore())
			lat := time.Since(t0)
			if err != nil {
				r.Errors++
				r.LastError = err.Error()
				continue
			}
			r.Series = n
			r.Latencies = append(r.Latencies, lat)
		}
		out = append(out, r)
	}
	return out
}

// noStore asks Strata's query-frontend neither to read nor to fill its
// results cache; other servers ignore it.
func noStore() http.Header { return http.Header{"Cache-Control": {"no-store"}} }

// queryRange runs one range query, with the headers h (may be nil), and
// returns how many series it answered.
func queryRange(ctx context.Context, client *http.Client, baseURL, query string, start, end time.Time, step time.Duration, h http.Header) (int, error) {
	form := url.Values{
		"query": {query},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("build query request: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read answer to %s: %w", query, err)
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return 0, fmt.Errorf("decode answer to %s (status %d): %w", query, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || ans.Status != "success" {
		return 0, fmt.Errorf("query %s: status %d: %s", query, resp.StatusCode, ans.Error)
	}
	if len(ans.Data.Result) == 0 {
		return 0, fmt.Errorf("query %s: empty result", query)
	}
	return len(ans.Data.Result), nil
}
