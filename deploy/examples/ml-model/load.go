package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// loadConfig is the built-in client: it keeps the metrics moving without
// any other client.
type loadConfig struct {
	rate        float64 // requests per second; 0 turns the loop off
	concurrency int     // requests in flight at most; a tick that finds them all busy is skipped
}

// maxLoadRate bounds -load.rate: the loop is a demo, not a load generator.
const maxLoadRate = 1000

// runLoad sends rate prediction requests a second to baseURL until ctx is
// done, each followed by the feedback of its true label, drawn from the same
// world the model was trained on. It waits for its requests before
// returning nil.
func runLoad(ctx context.Context, cfg loadConfig, baseURL string, seed uint64, log *slog.Logger) error {
	if cfg.rate <= 0 {
		return nil
	}
	client := &http.Client{Timeout: 10 * time.Second}
	world := rand.New(rand.NewPCG(seed, 2)) // only this goroutine draws from it
	slots := make(chan struct{}, cfg.concurrency)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		// A connection dialled for a request cancelled meanwhile waits in
		// the idle pool; the server's Shutdown would wait for it.
		client.CloseIdleConnections()
	}()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // every slot busy (slow inferences): skip this tick
		}
		e := draw(world)
		wg.Go(func() {
			defer func() { <-slots }()
			if err := predictAndLabel(ctx, client, baseURL, e); err != nil && ctx.Err() == nil {
				log.Debug("load loop request", "err", err)
			}
		})
	}
}

// predictAndLabel asks for a prediction of e.x and sends e.y as its
// feedback. A simulated inference failure (500) is not an error here.
func predictAndLabel(ctx context.Context, client *http.Client, baseURL string, e example) error {
	body, _ := json.Marshal(predictRequest{Features: e.x[:]}) // cannot fail: plain floats
	var p predictResponse
	status, err := postJSON(ctx, client, baseURL+"/predict", body, &p)
	if err != nil || status != http.StatusOK {
		return err
	}
	body, _ = json.Marshal(feedbackRequest{ID: p.ID, Label: &e.y})
	if status, err := postJSON(ctx, client, baseURL+"/feedback", body, nil); err != nil {
		return err
	} else if status != http.StatusNoContent {
		return fmt.Errorf("feedback of prediction %d: status %d", p.ID, status)
	}
	return nil
}

// postJSON posts body and decodes a 200 answer into out (when not nil).
func postJSON(ctx context.Context, client *http.Client, url string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer of %s: %w", url, err)
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
