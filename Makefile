# meliproxy: the Makefile is the contract. `make help` lists the targets.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
CONFIG    ?= config.toml
FUZZTIME  ?= 20s
STATICCHECK_VERSION := v0.8.2

.PHONY: help build run demo test test-short deps check fmt bench bench-go fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/meliproxy and bin/mockmeli
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/meliproxy ./cmd/meliproxy
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/mockmeli ./cmd/mockmeli

run: build ## run the proxy with config.toml (upstream https://api.mercadolibre.com)
	$(BIN)/meliproxy -config $(CONFIG)

demo: build ## run the proxy against the bundled mock API (no internet needed)
	@echo "mockmeli on 127.0.0.1:8081, meliproxy on :8080; try: curl 127.0.0.1:8080/categories/MLA97994"
	@$(BIN)/mockmeli -listen 127.0.0.1:8081 & mock=$$!; \
	trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
	$(BIN)/meliproxy -config deploy/demo.toml

deps: ## install what the tests need (redis-server, promtool) when missing
	@.ci/deps

test: deps ## every test with the race detector, then the 0-allocation guards (they need -race off)
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'Allocs' ./...

test-short: ## unit tests only, no external servers
	$(GO) test -race -short -count=1 ./...

check: ## gofmt, go vet, staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

bench-go: ## Go micro-benchmarks of the hot path (allocations included)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1s ./proxy/ ./limiter/ ./cache/ ./stats/

bench: build ## end-to-end load benchmark, ~7 min (wrk, vegeta; nginx, HAProxy side by side; installs them as root)
	@.ci/deps bench
	$(GO) run ./bench -bin $(BIN)

fuzz: ## run each fuzz target for FUZZTIME
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean: ## remove build outputs
	rm -rf $(BIN)
