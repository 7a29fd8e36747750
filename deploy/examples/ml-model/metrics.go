package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the service's own metrics. The names are the ones the
// quickstart's users start from, in Prometheus' conventions where these
// differ: the prediction counter ends in _total, durations are in seconds.
type metrics struct {
	inferenceTime prometheus.Histogram
	accuracy      prometheus.Gauge
	predictions   prometheus.Counter
	errors        *prometheus.CounterVec
	errorRate     prometheus.Gauge
	drift         prometheus.Gauge
}

// Reasons of prediction_errors_total.
const (
	reasonBadInput  = "bad_input"
	reasonInference = "inference"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		inferenceTime: f.NewHistogram(prometheus.HistogramOpts{
			Name: "model_inference_time_seconds",
			Help: "Time to answer one prediction request, failed ones and simulated slow paths included.",
			// Classic buckets for every Prometheus, and native buckets
			// (about 10% wide) for a scrape that asks for protobuf.
			Buckets:                         []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}),
		accuracy: f.NewGauge(prometheus.GaugeOpts{
			Name: "model_accuracy",
			Help: "Fraction of the last labelled predictions (POST /feedback) the model got right; the held-out accuracy of training until feedback arrives.",
		}),
		predictions: f.NewCounter(prometheus.CounterOpts{
			Name: "prediction_count_total",
			Help: "Predictions made (answered 200).",
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "prediction_errors_total",
			Help: "Prediction requests that got no prediction, by reason: bad_input (400) or inference (500, simulated failures that grow with drift).",
		}, []string{"reason"}),
		errorRate: f.NewGauge(prometheus.GaugeOpts{
			Name: "error_rate",
			Help: "Fraction of the last prediction requests that failed (prediction_errors_total over all requests, in the service's own window).",
		}),
		drift: f.NewGauge(prometheus.GaugeOpts{
			Name: "model_drift",
			Help: "The drift knob: 0 is the model as trained, 1 a coin flip (POST /drift?level=).",
		}),
	}
	m.errors.WithLabelValues(reasonBadInput)
	m.errors.WithLabelValues(reasonInference)
	return m
}
