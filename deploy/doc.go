// Package deploy holds the ways to run a Strata cluster, and the test that
// keeps them honest.
//
// Flow: local/ (`make cluster`) starts processes on loopback;
// docker-compose.yml and kubernetes/ describe the same topology (3 ingesters
// and 3 store-gateways in 3 zones, RF=3, distributors, queriers, a
// compactor, gossip join, one S3 bucket) for containers. LocalCluster is the
// topology of local/. examples/ holds quickstarts around one -target=all
// process (examples/ml-model: a service, Prometheus, Grafana, Alertmanager).
// Owns: the manifests; manifests_test.go parses every YAML file here and
// checks that it names only flags and targets the strata binary has, and
// that every process that needs the bucket shares one.
// Does not: run a container engine (none runs where the tests run).
package deploy
