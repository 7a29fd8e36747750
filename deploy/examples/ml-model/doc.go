// Command ml-model is the example service of the ML-model quickstart: a tiny
// model that serves predictions over HTTP and exposes the four metrics the
// quickstart's dashboard and alerts are built on.
//
// Flow: start --train--> a logistic regression on a synthetic two-feature
// data set it generates (pure Go, seeded); its load loop (or any client)
// --POST /predict--> a prediction --POST /feedback--> the true label, which
// keeps model_accuracy; Prometheus --GET /metrics--> remote_write --> Strata;
// Strata's Alertmanager --POST /webhook--> the log (the quickstart's webhook
// receiver).
// Owns: the model, its drift knob (POST /drift?level=0.8 or -drift: accuracy
// falls and latency rises), the simulated feedback, its own metrics registry.
// Does not: store anything across restarts, or talk to Strata (Prometheus
// does).
//
// Usage:
//
//	go run ./deploy/examples/ml-model [-listen-address 127.0.0.1:8080] [-drift 0] [-load.rate 20]
//
// The quickstart around it (Prometheus, rules, Grafana, Alertmanager, Docker
// Compose, `make example-ml`) is described in README.md beside this file.
package main
