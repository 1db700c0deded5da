# floe: see README.md. Every target works from a clean checkout with Go installed.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
FUZZTIME ?= 30s
TEST_TIMEOUT ?= 20m

.PHONY: build dev test vet bench bench-cluster fuzz minio clean

build: ## build bin/floe (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/floe ./tools/floe

dev: build ## run an embedded 3-node cluster on loopback
	$(BIN)/floe dev

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: vet $(BIN)/minio ## the whole suite, with the race detector (real floe processes, real MinIO)
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

bench: build ## micro-benchmarks, then the 3-process cluster benchmark of the README
	$(GO) test -run '^$$' -bench . -benchtime 2s ./node/segment/ ./meta/logstore/ ./archive/seekable/
	./tools/floe/bench-cluster.sh

bench-cluster: build
	./tools/floe/bench-cluster.sh

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/'); do \
		file=$${spec%%:*}; fn=$${spec##*:}; pkg=./$$(dirname $${file#./}); \
		echo "== $$pkg $$fn"; $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

minio: $(BIN)/minio ## install the pinned MinIO server into ./bin (2-3 minutes the first time)

$(BIN)/minio:
	GOBIN=$(BIN) CGO_ENABLED=0 $(GO) install github.com/minio/minio@$(MINIO_VERSION)

clean:
	rm -rf $(BIN)/floe data
