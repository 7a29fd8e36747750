# Strata — see README.md. `make run` and `make test` need only Go; test
# dependencies (Debian's prometheus and node_exporter) are installed here.

GO        ?= go
BIN       := bin
STRATA    := $(BIN)/strata
PKGS      := ./...
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Pinned code generators; `make proto` installs them.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
BENCHSTAT          := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build run test test-deps bench bench-go proto lint docs cluster clean example-ml

all: build

# The binary turns `git describe` into a semver (cmd/strata/version.go):
# 0.3.1 for a build of tag v0.3.1, 0.3.2-dev+<hash>[.dirty] after it,
# 0.0.0-dev+<hash>[.dirty] without a tag. `bin/strata -version` prints it.
DESCRIBE  := $(shell git describe --tags --always --dirty --match 'v[0-9]*' 2>/dev/null)
REVISION  := $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
LDFLAGS   := -X main.gitDescribe=$(DESCRIBE) -X main.revision=$(REVISION) -X main.branch=$(BRANCH) -X main.buildDate=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(STRATA) ./cmd/strata

## run: start Strata with embedded defaults (data in ./data, HTTP :9009).
run: build
	./$(STRATA)

## test: install what the tests need, then vet and run every test.
test: test-deps lint
	$(GO) test -count=1 -timeout 14m $(PKGS)

# Debian's Prometheus and node_exporter are the real peers of the end-to-end
# tests, versitygw the S3 server of the object-storage tests, memcached the
# results cache of the query-frontend tests; installed only
# when missing.
test-deps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-node-exporter >/dev/null || missing="$$missing prometheus-node-exporter"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v memcached >/dev/null || missing="$$missing memcached"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# The S3-compatible server of the object-storage tests, a real one on loopback.
	@command -v versitygw >/dev/null || [ -x "$(GOBIN)/versitygw" ] || { echo "installing versitygw"; GOFLAGS= $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0; }

## bench: the load benchmark of README "Performance": Strata against Debian's Prometheus,
## then a loopback cluster (3 ingesters, 2 distributors, 1 querier) at RF=3 against RF=1,
## then the noisy neighbour: tenant B's pushes alone and while tenant A floods over its limit,
## then long-term storage: bytes/sample in the bucket after compaction and 7-day queries through
## the store-gateway, cold and warm (-longterm.*; -series sizes its query set too),
## then rule evaluation: 10,000 recording rules over 100 tenants, strata's ruler beside Prometheus (-rules.*).
## A reduced run: make bench BENCH_FLAGS="-series=10000 -rounds=20" LONGTERM_FLAGS="-longterm.cold-reps=1 -longterm.warm-reps=3" RULES_FLAGS="-rules.count=1000 -rules.duration=60s"
bench: build test-deps
	$(GO) run ./cmd/strata-bench -strata.bin=$(STRATA) $(BENCH_FLAGS)
	$(GO) run ./cmd/strata-bench -mode=cluster -strata.bin=$(STRATA) $(BENCH_FLAGS)
	$(GO) run ./cmd/strata-bench -mode=noisy -strata.bin=$(STRATA) $(BENCH_FLAGS)
	$(GO) run ./cmd/strata-bench -mode=longterm -strata.bin=$(STRATA) $(BENCH_FLAGS) $(LONGTERM_FLAGS)
	$(GO) run ./cmd/strata-bench -mode=rules -strata.bin=$(STRATA) $(BENCH_FLAGS) $(RULES_FLAGS)
	$(GO) run ./cmd/strata-bench -mode=backfill -strata.bin=$(STRATA)

## bench-go: Go micro-benchmarks of the hot paths (compare runs with benchstat).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./remotewrite ./distributor ./ingester ./querier ./ring | tee bench-go.txt
	@echo "compare with: $(GO) run $(BENCHSTAT) old.txt bench-go.txt"

## proto: regenerate the committed gRPC code (needs Debian's protobuf-compiler).
proto:
	@command -v protoc >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq protobuf-compiler; }
	GOFLAGS= $(GO) install $(PROTOC_GEN_GO)
	GOFLAGS= $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(GOBIN):$$PATH" $(GO) generate ./proto/...

## lint: formatting, vet, and go.mod/go.sum exactly as `go mod tidy` leaves them.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '\.pb\.go$$' || true); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

## docs: regenerate the flag reference in README.md from the code.
docs:
	$(GO) test ./cmd/strata -run TestReadmeReference -update

clean:
	rm -rf $(BIN)

## example-ml: the ML-model quickstart (deploy/examples/ml-model) without Docker: Strata
## (with its built-in Alertmanager), the example service and Debian's prometheus on loopback; prints
## where to look, Ctrl-C stops it. Ports: make example-ml STRATA_PORT=9009 MODEL_PORT=8080 PROM_PORT=9090
example-ml: build
	STRATA_BIN=$(CURDIR)/$(STRATA) deploy/examples/ml-model/run-local.sh

## cluster: start a real multi-process cluster on loopback (deploy/local): 3
## ingesters and 3 store-gateways in 3 zones (RF=3), 2 distributors, 1 querier,
## 1 compactor; prints its URLs. Node i listens on CLUSTER_PORT_BASE+i (HTTP),
## +100+i (gRPC) and +200+i (gossip): make cluster CLUSTER_PORT_BASE=20000
CLUSTER_PORT_BASE ?= 19000
cluster: build
	$(GO) run ./deploy/local start -bin $(STRATA) -base-port $(CLUSTER_PORT_BASE)

## cluster-stop: stop exactly the processes `make cluster` started (SIGTERM,
## then SIGKILL after 30s); data and logs stay in deploy/local/.data.
cluster-stop:
	$(GO) run ./deploy/local stop

.PHONY: cluster-stop
