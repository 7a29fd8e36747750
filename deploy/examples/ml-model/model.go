package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// example is one labelled point of the synthetic data set.
type example struct {
	x [2]float64
	y int // 0 or 1
}

// generate draws n labelled examples: class 1 is a Gaussian cloud around
// (1, 1), class 0 one around (-1, -1), both with standard deviation 1, in
// equal numbers on average. The best possible classifier is right about 92%
// of the time.
func generate(rng *rand.Rand, n int) []example {
	data := make([]example, n)
	for i := range data {
		data[i] = draw(rng)
	}
	return data
}

// draw is one example of generate.
func draw(rng *rand.Rand) example {
	y := rng.IntN(2)
	centre := -1.0
	if y == 1 {
		centre = 1
	}
	return example{x: [2]float64{centre + rng.NormFloat64(), centre + rng.NormFloat64()}, y: y}
}

// model is a logistic regression: P(class 1 | x) = σ(w·x + b).
type model struct {
	w [2]float64
	b float64
}

// train fits a model to data by full-batch gradient descent on the log loss.
func train(data []example, epochs int, learningRate float64) model {
	var m model
	n := float64(len(data))
	for range epochs {
		var gw [2]float64
		var gb float64
		for _, e := range data {
			diff := m.prob(e.x, 0) - float64(e.y)
			gw[0] += diff * e.x[0]
			gw[1] += diff * e.x[1]
			gb += diff
		}
		m.w[0] -= learningRate * gw[0] / n
		m.w[1] -= learningRate * gw[1] / n
		m.b -= learningRate * gb / n
	}
	return m
}

// prob is P(class 1 | x) as the model sees it at the given drift (0 to 1).
// Drift turns the model's weight vector by drift·90°: at 0 the model is as
// trained, at 1 its decision boundary is perpendicular to the trained one
// and it is right half of the time, a coin flip.
func (m model) prob(x [2]float64, drift float64) float64 {
	s, c := math.Sincos(drift * math.Pi / 2)
	w0 := c*m.w[0] - s*m.w[1]
	w1 := s*m.w[0] + c*m.w[1]
	return 1 / (1 + math.Exp(-(w0*x[0] + w1*x[1] + m.b)))
}

// predict is the class the model picks for x at the given drift.
func (m model) predict(x [2]float64, drift float64) int {
	if m.prob(x, drift) >= 0.5 {
		return 1
	}
	return 0
}

// accuracy is the fraction of data the model classifies right at the given
// drift.
func (m model) accuracy(data []example, drift float64) float64 {
	if len(data) == 0 {
		return 0
	}
	right := 0
	for _, e := range data {
		if m.predict(e.x, drift) == e.y {
			right++
		}
	}
	return float64(right) / float64(len(data))
}

// Simulated serving cost: an inference takes an exponentially distributed
// time whose mean grows with drift, and a share of drift/10 of the
// inferences take a slow path of 1 to 2.5 s (a degraded model falling back
// to a heavier one). At drift 0 the p99 is under 10 ms; at 0.8 more than 1%
// of inferences are slow, so the p99 is above 1 s.
const (
	baseInferenceMean = 2 * time.Millisecond
	slowPathMin       = time.Second
	slowPathSpread    = 1500 * time.Millisecond
)

// inferenceDelay is the simulated time of one inference at the given drift.
func inferenceDelay(rng *rand.Rand, drift float64) time.Duration {
	if rng.Float64() < drift/10 {
		return slowPathMin + time.Duration(rng.Float64()*float64(slowPathSpread))
	}
	mean := float64(baseInferenceMean) * (1 + 10*drift)
	return time.Duration(rng.ExpFloat64() * mean)
}

// inferenceFails reports whether a simulated inference fails: 0.5% of them
// at drift 0, up to 10.5% at drift 1.
func inferenceFails(rng *rand.Rand, drift float64) bool {
	return rng.Float64() < 0.005+drift/10
}
