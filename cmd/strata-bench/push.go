package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
)

// workload is the whole push: series split into batches, rounds of one sample
// per series, timestamps one interval apart.
type workload struct {
	batches  []*batch
	rounds   int
	baseTS   int64 // milliseconds of round 0
	interval time.Duration
	series   int
	// compressed holds every request body, indexed like requests (round *
	// batches + batch), when prebuild ran; otherwise senders build each body
	// just before sending it.
	compressed [][]byte
}

// newWorkload prebuilds the uncompressed body of every batch. Round r's
// timestamp is base + r*interval; see timestamps for the choice of base.
func newWorkload(series, perRequest, rounds int, interval time.Duration, now time.Time) (*workload, error) {
	return newWorkloadAt(series, perRequest, rounds, interval, baseTimestamp(now, rounds, interval))
}

// newWorkloadAt is newWorkload with round 0 at baseTS (milliseconds).
func newWorkloadAt(series, perRequest, rounds int, interval time.Duration, baseTS int64) (*workload, error) {
	w := &workload{rounds: rounds, interval: interval, series: series, baseTS: baseTS}
	if err := checkTimestamps(w.baseTS, w.lastTS()); err != nil {
		return nil, err
	}
	for first := 0; first < series; first += perRequest {
		w.batches = append(w.batches, newBatch(first, min(perRequest, series-first)))
	}
	return w, nil
}

// prebuild compresses every request body up front, in parallel, so that the
// push phase costs the generator nothing but HTTP.
func (w *workload) prebuild(workers int) {
	nb := len(w.batches)
	w.compressed = make([][]byte, w.requests())
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			var buf []byte
			for b := int(next.Add(1) - 1); b < nb; b = int(next.Add(1) - 1) {
				for r := range w.rounds {
					w.batches[b].setRound(r, w.ts(r))
					buf = snappy.Encode(buf[:cap(buf)], w.batches[b].body)
					w.compressed[r*nb+b] = slices.Clone(buf)
				}
			}
		})
	}
	wg.Wait()
}

// prebuildBytes estimates what prebuild would hold in memory, from one
// compressed body.
func (w *workload) prebuildBytes() int64 {
	if len(w.batches) == 0 {
		return 0
	}
	b := newBatch(w.batches[0].first, len(w.batches[0].offsets))
	b.setRound(0, w.baseTS)
	return int64(len(snappy.Encode(nil, b.body))) * int64(w.requests())
}

// lastTS is the timestamp of the last round, in milliseconds.
func (w *workload) lastTS() int64 { return w.ts(w.rounds - 1) }

// ts is the timestamp of round r, in milliseconds.
func (w *workload) ts(r int) int64 { return w.baseTS + int64(r)*w.interval.Milliseconds() }

// baseTimestamp picks round 0's timestamp so that the last round lands at now
// (rounded down to the interval): every sample is in the past, so Strata's
// "too far in the future" check (-validation.create-grace-period, 10m) never
// fires, and the whole run spans rounds*interval (62.5m by default) ending now.
//
// Prometheus (2.42 and 3.x alike) appends a sample only if it is not older
// than the head's newest sample minus half a block range (2h/2 = 1h) and not
// older than its series' last sample (out-of-order ingestion is off). Both
// hold because samples arrive in round order: a batch's round r+1 is sent only
// after its round r was answered, and requests are handed to senders in
// (round, batch) order, so senders are at most about one round apart, far less
// than the 1h window. The span beyond 1h is harmless for the same reason: the
// head's minimum time follows the first round, and nothing older arrives
// later. Strata's ingester has the same TSDB rules, and its
// -validation.past-grace-period is 0 (off) by default.
func baseTimestamp(now time.Time, rounds int, interval time.Duration) int64 {
	last := now.Truncate(interval)
	return last.Add(-time.Duration(rounds-1) * interval).UnixMilli()
}

func (w *workload) requests() int { return w.rounds * len(w.batches) }

// pushResult is what the senders measured.
type pushResult struct {
	Requests, Accepted, Rejected int   // Rejected: answered 4xx (never retried) or gave up
	Limited                      int   // of Rejected: the last answer was 429
	SamplesAccepted              int64 // samples in accepted requests
	Retries                      int
	Wall                         time.Duration
	Latencies                    []time.Duration // one per accepted request, including retries
	FirstError                   string
}

// pusher sends a workload to one or more URLs with a fixed number of
// senders; request idx goes to urls[idx%len(urls)], so a cluster's
// distributors take turns.
type pusher struct {
	urls    []string
	senders int
	client  *http.Client
	retries int    // attempts after the first for 429, 5xx and transport errors
	tenant  string // X-Scope-OrgID; empty sends none
	// spacing, when set, holds request idx back until idx*spacing after the
	// start: an open-loop, steady request rate, as a Prometheus sends.
	spacing time.Duration
}

func newPusher(urls []string, senders int) *pusher {
	return &pusher{
		urls:    urls,
		senders: senders,
		retries: 10,
		client: &http.Client{
			Timeout: time.Minute,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: senders,
				DisableCompression:  true,
			},
		},
	}
}

// run pushes every round of w. Requests are numbered idx = round*batches +
// batch and handed out in that order; before sending (r, b) a sender waits
// until (r-1, b) has been answered, so every series receives its samples in
// time order, and, with spacing, until its time has come. It returns when
// all requests are done or ctx ends.
func (p *pusher) run(ctx context.Context, w *workload) (pushResult, error) {
	nb := len(w.batches)
	total := w.requests()
	var (
		next atomic.Int64
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		done = make([]int, nb) // rounds of each batch answered so far
		res  = pushResult{Latencies: make([]time.Duration, 0, total)}
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	})
	defer stop()

	start := time.Now()
	var wg sync.WaitGroup
	for range p.senders {
		wg.Go(func() {
			var compressed []byte
			for {
				idx := int(next.Add(1) - 1)
				if idx >= total || ctx.Err() != nil {
					return
				}
				r, b := idx/nb, idx%nb
				if p.spacing > 0 {
					if err := wait(ctx, time.Until(start.Add(time.Duration(idx)*p.spacing))); err != nil {
						return
					}
				}
				mu.Lock()
				for done[b] < r && ctx.Err() == nil {
					cond.Wait()
				}
				mu.Unlock()
				if ctx.Err() != nil {
					return
				}
				bt := w.batches[b]
				body := w.body(idx, &compressed)
				lat, retries, err := p.send(ctx, p.urls[idx%len(p.urls)], body)
				mu.Lock()
				res.Requests++
				res.Retries += retries
				if err == nil {
					res.Accepted++
					res.SamplesAccepted += int64(len(bt.offsets))
					res.Latencies = append(res.Latencies, lat)
				} else {
					res.Rejected++
					if statusOf(err) == http.StatusTooManyRequests {
						res.Limited++
					}
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				}
				done[b] = r + 1
				cond.Broadcast()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Wall = time.Since(start)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("push stopped after %d of %d requests: %w", res.Requests, total, err)
	}
	return res, nil
}

// body returns request idx's compressed body: prebuilt, or built now into
// *buf. Building relies on the caller sending requests of a batch in order.
func (w *workload) body(idx int, buf *[]byte) []byte {
	if w.compressed != nil {
		return w.compressed[idx]
	}
	nb := len(w.batches)
	r, b := idx/nb, idx%nb
	w.batches[b].setRound(r, w.ts(r))
	*buf = snappy.Encode((*buf)[:cap(*buf)], w.batches[b].body)
	return *buf
}

// errRetryable marks answers the remote-write protocol retries.
var errRetryable = errors.New("retryable")

// send posts one body, retrying 429, 5xx and transport errors with backoff.
// The latency is from the first attempt to the final answer.
func (p *pusher) send(ctx context.Context, url string, body []byte) (time.Duration, int, error) {
	start := time.Now()
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := p.post(ctx, url, body)
		if err == nil || !errors.Is(err, errRetryable) || attempt == p.retries {
			return time.Since(start), attempt, err
		}
		select {
		case <-ctx.Done():
			return time.Since(start), attempt, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *pusher) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build push request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "strata-bench")
	if p.tenant != "" {
		req.Header.Set("X-Scope-OrgID", p.tenant)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("push: %w: %w", errRetryable, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	serr := &statusError{code: resp.StatusCode, msg: string(bytes.TrimSpace(msg))}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
		return fmt.Errorf("push: %w: %w", errRetryable, serr)
	}
	return fmt.Errorf("push: %w", serr)
}

// statusError is a push answered with a status other than 2xx.
type statusError struct {
	code int
	msg  string // the start of the body
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.code, e.msg) }

// statusOf is the HTTP status of a push error; 0 when there was no answer.
func statusOf(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.code
	}
	return 0
}
