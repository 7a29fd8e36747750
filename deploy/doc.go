// Package deploy holds the ways to run a Strata cluster, and the test that
// keeps them honest.
//
// Flow: local/ (`make cluster`) starts processes on loopback;
// docker-compose.yml and kubernetes/ describe the same topology (3 ingesters
// in 3 zones, RF=3, distributors, queriers, gossip join) for containers.
// Owns: the manifests; manifests_test.go parses every YAML file here and
// checks that it names only flags and targets the strata binary has.
// Does not: run a container engine (none runs where the tests run).
package deploy
