# floe: see README.md. Every target works from a clean checkout with Go installed.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
NATS_SERVER_VERSION := v2.15.2
FUZZTIME ?= 30s
TEST_TIMEOUT ?= 20m
COMPOSE_TEST_TIMEOUT ?= 10m

.PHONY: build dev demo test vet bench bench-cluster bench-scale fuzz minio nats clean images compose-up compose-down compose-logs test-compose

build: ## build bin/floe (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/floe ./tools/floe

dev: build ## run an embedded 3-node cluster on loopback
	$(BIN)/floe dev

demo: build ## floe's story in a minute: write, archive, lose a node's disk, read it all back from the bucket
	$(BIN)/floe demo

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The compose test (localstack/) runs after the rest of the suite, not beside it, so that its
# containers do not compete for CPU with the timed cluster tests. It runs whenever a Docker
# engine answers; FLOE_COMPOSE_TEST=1 (set by .ci/run) makes a missing engine a failure,
# FLOE_COMPOSE_TEST=0 skips it.
test: vet $(BIN)/minio ## the whole suite, with the race detector (real floe processes, real MinIO, the compose stack)
	FLOE_COMPOSE_TEST=0 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@if [ "$${FLOE_COMPOSE_TEST:-}" = 1 ] || { [ "$${FLOE_COMPOSE_TEST:-}" != 0 ] && docker info >/dev/null 2>&1; }; then \
		$(MAKE) --no-print-directory test-compose; \
	else \
		echo "make test: no Docker engine answers (or FLOE_COMPOSE_TEST=0): the compose test did not run; see make test-compose"; \
	fi

test-compose: $(BIN)/minio ## the localstack e2e test: builds the images, runs the stack in Docker, kills and cuts off nodes
	FLOE_COMPOSE_TEST=1 $(GO) test -count=1 -timeout $(COMPOSE_TEST_TIMEOUT) -v ./localstack/

bench: build ## micro-benchmarks, then the 3-process cluster benchmark of the README
	$(GO) test -run '^$$' -bench . -benchtime 2s ./node/segment/ ./meta/logstore/ ./archive/seekable/
	./tools/floe/bench-cluster.sh

bench-cluster: build ## the cluster benchmark: floe, then JetStream beside it when make nats has run
	./tools/floe/bench-cluster.sh

bench-scale: build ## how cost grows: 1,000 topics, 5,000 idle connections, a 10-million-entry topic (BENCH_SCALE_ARGS=...)
	./tools/floe/bench-scale.sh $(BENCH_SCALE_ARGS)

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/'); do \
		file=$${spec%%:*}; fn=$${spec##*:}; pkg=./$$(dirname $${file#./}); \
		echo "== $$pkg $$fn"; $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

minio: $(BIN)/minio ## install the pinned MinIO server into ./bin (2-3 minutes the first time)

$(BIN)/minio:
	GOBIN=$(BIN) CGO_ENABLED=0 $(GO) install github.com/minio/minio@$(MINIO_VERSION)

# nats-server is only a point of comparison for the cluster benchmark (JetStream side by side
# with floe); nothing in the test suite needs it.
nats: $(BIN)/nats-server ## install the pinned nats-server into ./bin for make bench-cluster

$(BIN)/nats-server:
	GOBIN=$(BIN) CGO_ENABLED=0 $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

# MINIO=official: the stack runs the official MinIO image (pulled from a registry) instead
# of floe-minio:dev, which is then neither built nor needs bin/minio.
MINIO ?= local
export MINIO

images: build $(if $(filter official,$(MINIO)),,$(BIN)/minio) ## build floe:dev and floe-minio:dev offline (FROM scratch, static binaries)
	FLOE_BIN=$(BIN)/floe MINIO_BIN=$(BIN)/minio ./localstack/stack.sh images

compose-up: images ## MinIO + a 3-node cluster in Docker (localstack/docker-compose.yml); waits until healthy
	FLOE_BIN=$(BIN)/floe ./localstack/stack.sh up

compose-down: ## stop the compose stack and remove its containers, network and volumes
	./localstack/stack.sh down

compose-logs: ## follow the compose stack's logs
	./localstack/stack.sh logs

clean:
	rm -rf $(BIN)/floe $(BIN)/natsbench data
