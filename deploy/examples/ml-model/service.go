package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	// recentPredictions is how many predictions wait for their feedback;
	// older ones are forgotten (feedback for them gets 404).
	recentPredictions = 10000
	// accuracyWindow is how many labelled predictions model_accuracy covers.
	accuracyWindow = 200
	// errorWindow is how many prediction requests error_rate covers.
	errorWindow = 200
	// keptNotifications is how many webhook notifications GET /webhook shows.
	keptNotifications = 50
	maxBodyBytes      = 1 << 20
)

// service serves the model over HTTP. Its methods are safe for concurrent
// use.
type service struct {
	model   model
	metrics *metrics
	reg     *prometheus.Registry
	log     *slog.Logger
	sleep   func(r *http.Request, d time.Duration) // the simulated inference time

	mu          sync.Mutex
	rng         *rand.Rand // serving randomness: delays, failures
	drift       float64
	nextID      uint64
	recent      [recentPredictions]recentPrediction
	accuracy    window
	errors      window
	notified    []notification // newest last, at most keptNotifications
	notifyCount int
}

// recentPrediction is a prediction waiting for its label.
type recentPrediction struct {
	id       uint64 // 0: empty slot
	class    int
	labelled bool
}

// window counts the true outcomes among the last len(seen) events.
type window struct {
	seen []bool
	next int
	full bool
	hits int // true values in seen
}

func newWindow(size int) window { return window{seen: make([]bool, size)} }

func (w *window) add(v bool) {
	if w.full && w.seen[w.next] {
		w.hits--
	}
	w.seen[w.next] = v
	if v {
		w.hits++
	}
	w.next++
	if w.next == len(w.seen) {
		w.next, w.full = 0, true
	}
}

// ratio is the share of true outcomes, and false when the window is empty.
func (w *window) ratio() (float64, bool) {
	n := w.next
	if w.full {
		n = len(w.seen)
	}
	if n == 0 {
		return 0, false
	}
	return float64(w.hits) / float64(n), true
}

// serviceConfig is what newService needs besides the trained model.
type serviceConfig struct {
	drift   float64
	seed    uint64
	heldOut float64 // the held-out accuracy of training: model_accuracy until feedback arrives
	noSleep bool    // skip the simulated inference time (tests of everything else)
}

func newService(m model, cfg serviceConfig, log *slog.Logger) *service {
	reg := prometheus.NewRegistry()
	s := &service{
		model:    m,
		metrics:  newMetrics(reg),
		reg:      reg,
		log:      log,
		sleep:    sleepCtx,
		rng:      rand.New(rand.NewPCG(cfg.seed, 1)),
		accuracy: newWindow(accuracyWindow),
		errors:   newWindow(errorWindow),
	}
	if cfg.noSleep {
		s.sleep = func(*http.Request, time.Duration) {}
	}
	s.setDrift(cfg.drift)
	s.metrics.accuracy.Set(cfg.heldOut)
	return s
}

// sleepCtx waits d or until the request is cancelled.
func sleepCtx(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

func (s *service) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /predict", s.predict)
	mux.HandleFunc("POST /predict", s.predict)
	mux.HandleFunc("POST /feedback", s.feedback)
	mux.HandleFunc("GET /drift", s.getDrift)
	mux.HandleFunc("POST /drift", s.postDrift)
	mux.HandleFunc("POST /webhook", s.webhook)
	mux.HandleFunc("GET /webhook", s.notifications)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

func (s *service) index(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprint(w, `ml-model: a logistic regression on two features.
  GET  /predict?x1=0.5&x2=1.2            or POST /predict {"features":[0.5,1.2]}  -> {"id":..,"class":..,"probability":..}
  POST /feedback {"id":..,"label":1}     the true label of a prediction (model_accuracy)
  GET  /drift, POST /drift?level=0.8     degrade the model: accuracy falls, latency rises (0 = as trained)
  POST /webhook, GET /webhook            Alertmanager's webhook receiver: logs each alert; GET lists the last ones
  GET  /metrics                          model_inference_time_seconds, model_accuracy, prediction_count_total, error_rate, ...
`)
}

type predictRequest struct {
	Features []float64 `json:"features"`
}

type predictResponse struct {
	ID          uint64  `json:"id"`
	Class       int     `json:"class"`
	Probability float64 `json:"probability"` // of class 1
}

func (s *service) predict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.inferenceTime.Observe(time.Since(start).Seconds()) }()
	x, err := features(w, r)
	if err != nil {
		s.countRequest(reasonBadInput)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	drift := s.drift
	delay := inferenceDelay(s.rng, drift)
	fails := inferenceFails(s.rng, drift)
	s.mu.Unlock()
	s.sleep(r, delay)
	if fails {
		s.countRequest(reasonInference)
		http.Error(w, "inference failed (simulated; more often with drift)", http.StatusInternalServerError)
		return
	}
	p := s.model.prob(x, drift)
	class := 0
	if p >= 0.5 {
		class = 1
	}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.recent[id%recentPredictions] = recentPrediction{id: id, class: class}
	s.mu.Unlock()
	s.countRequest("")
	writeJSON(w, predictResponse{ID: id, Class: class, Probability: p})
}

// features reads x1 and x2 from the query (GET) or a JSON body (POST).
func features(w http.ResponseWriter, r *http.Request) ([2]float64, error) {
	var x [2]float64
	if r.Method == http.MethodGet {
		for i, name := range []string{"x1", "x2"} {
			v, err := strconv.ParseFloat(r.URL.Query().Get(name), 64)
			if err != nil {
				return x, fmt.Errorf("query parameter %s: want a number, got %q", name, r.URL.Query().Get(name))
			}
			x[i] = v
		}
	} else {
		var req predictRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
			return x, fmt.Errorf(`decode body: want {"features":[x1,x2]}: %w`, err)
		}
		if len(req.Features) != 2 {
			return x, fmt.Errorf("features: want 2 numbers, got %d", len(req.Features))
		}
		x = [2]float64(req.Features)
	}
	for i, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return x, fmt.Errorf("feature %d is %v: want a finite number", i+1, v)
		}
	}
	return x, nil
}

// countRequest counts one prediction request: a prediction when reason is
// "", otherwise an error of that reason.
func (s *service) countRequest(reason string) {
	if reason == "" {
		s.metrics.predictions.Inc()
	} else {
		s.metrics.errors.WithLabelValues(reason).Inc()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors.add(reason != "")
	r, _ := s.errors.ratio()
	s.metrics.errorRate.Set(r)
}

type feedbackRequest struct {
	ID    uint64 `json:"id"`
	Label *int   `json:"label"`
}

func (s *service) feedback(w http.ResponseWriter, r *http.Request) {
	var req feedbackRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		http.Error(w, fmt.Sprintf(`decode body: want {"id":N,"label":0|1}: %v`, err), http.StatusBadRequest)
		return
	}
	if req.Label == nil || (*req.Label != 0 && *req.Label != 1) {
		http.Error(w, "label: want 0 or 1", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.recent[req.ID%recentPredictions]
	switch {
	case req.ID == 0 || p.id != req.ID:
		http.Error(w, fmt.Sprintf("prediction %d is unknown or older than the last %d", req.ID, recentPredictions), http.StatusNotFound)
		return
	case p.labelled:
		http.Error(w, fmt.Sprintf("prediction %d already has its label", req.ID), http.StatusConflict)
		return
	}
	p.labelled = true
	s.accuracy.add(p.class == *req.Label)
	acc, _ := s.accuracy.ratio()
	s.metrics.accuracy.Set(acc)
	w.WriteHeader(http.StatusNoContent)
}

type driftResponse struct {
	Level float64 `json:"level"`
}

func (s *service) getDrift(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	d := s.drift
	s.mu.Unlock()
	writeJSON(w, driftResponse{Level: d})
}

func (s *service) postDrift(w http.ResponseWriter, r *http.Request) {
	level, err := parseDrift(r.URL.Query().Get("level"))
	if err != nil {
		http.Error(w, "level: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.setDrift(level)
	s.log.Info("drift set", "level", level)
	writeJSON(w, driftResponse{Level: level})
}

// parseDrift parses a drift level, a number from 0 to 1.
func parseDrift(v string) (float64, error) {
	level, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(level) || level < 0 || level > 1 {
		return 0, fmt.Errorf("want a number from 0 to 1, got %q", v)
	}
	return level, nil
}

func (s *service) setDrift(level float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drift = level
	s.metrics.drift.Set(level)
}

// notification is one alert of an Alertmanager webhook notification
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
type notification struct {
	Received    time.Time         `json:"received"`
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

// webhook is the quickstart's webhook receiver: it logs every alert
// Alertmanager sends and keeps the last ones for GET /webhook.
func (s *service) webhook(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Receiver string         `json:"receiver"`
		Alerts   []notification `json:"alerts"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&msg); err != nil {
		http.Error(w, "decode webhook notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		a.Received = now
		s.log.Info("alert notification", "receiver", msg.Receiver, "status", a.Status,
			"alertname", a.Labels["alertname"], "labels", a.Labels, "summary", a.Annotations["summary"])
	}
	s.mu.Lock()
	s.notified = append(s.notified, msg.Alerts...)
	s.notifyCount += len(msg.Alerts)
	if n := len(s.notified); n > keptNotifications {
		s.notified = append([]notification(nil), s.notified[n-keptNotifications:]...)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *service) notifications(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := struct {
		Total  int            `json:"total"`
		Alerts []notification `json:"alerts"`
	}{s.notifyCount, append([]notification{}, s.notified...)}
	s.mu.Unlock()
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v) // fails only when the client went away: nothing to tell it
}
