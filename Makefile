# Herald. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/herald
STATICCHECK_VERSION := v0.8.2
HELM_VERSION := v3.22.0
GOBIN := $(shell $(GO) env GOPATH)/bin
TEST_TIMEOUT ?= 8m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/herald (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/herald

.PHONY: run
run: ## run everything in one process (herald dev): embedded NATS and Redis, simulator, API, worker
	$(GO) run ./cmd/herald dev

.PHONY: deps
deps: ## install what the tests need: redis-server, kannel and chromium (Debian), helm (Go module proxy)
	@missing=; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	{ command -v bearerbox >/dev/null 2>&1 || test -x /usr/sbin/bearerbox; } || missing="$$missing kannel"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (Debian packages)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		$$SUDO systemctl disable --now redis-server kannel >/dev/null 2>&1 || true; \
	fi
	@redis-server --version
	@test -x $(GOBIN)/helm || (echo "installing helm $(HELM_VERSION) (go install)"; $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION))
	$(GO) mod download

.PHONY: test
test: deps ## install test dependencies, then run every test with the race detector, and the external example
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# Another module using only the public packages (its own go.mod, replace ../..).
	cd examples/external && $(GO) vet ./... && $(GO) run -race .

.PHONY: test-short
test-short: ## run the tests without the race detector (faster)
	$(GO) test -count=1 ./...

.PHONY: bench
bench: deps build ## run the benchmarks and write BENCHMARKS.md
	@# The asynq peer is a module of its own (only this target builds it): its tests first.
	cd cmd/heraldbench/peer && GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test -count=1 ./...
	$(GO) run ./cmd/heraldbench -out BENCHMARKS.md

.PHONY: chaos
chaos: deps ## chaos test: 50,000 jobs, 3-node NATS (R3), worker kills, a NATS node and Redis restarted
	$(GO) run ./cmd/heraldchaos

.PHONY: lint
lint: ## go vet and staticcheck (installed on first use)
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

.PHONY: fuzz
fuzz: ## fuzz the job decoder, template renderer, webhook parser, event encoder and phone check for a while each
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=30s ./internal/job
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./internal/webhook
	$(GO) test -run=^$$ -fuzz=FuzzRender -fuzztime=30s ./internal/templates
	$(GO) test -run=^$$ -fuzz=FuzzEventJSON -fuzztime=30s ./worker
	$(GO) test -run=^$$ -fuzz=FuzzValid -fuzztime=30s ./internal/phone

.PHONY: clean
clean: ## remove build output and the dev data directory
	rm -rf bin .herald
