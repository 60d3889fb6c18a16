# dyno: `make demo` runs the main job, `make test` runs every test.
# Everything fetched or built goes into ignored folders: .cache/ (ONNX Runtime,
# influxd, tools), models/ (the model zoo and trained classifier).

SHELL := /bin/bash
GO    ?= go
export CGO_ENABLED := 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Fetch Go modules and the ONNX Runtime 1.24.1 library (npm registry) into .cache/; no-op when present (ORT_LIB=path uses your own)
	@echo "deps: downloading Go modules (cached in $$($(GO) env GOMODCACHE))"
	@$(GO) mod download
	@./scripts/fetch-ort.sh

.PHONY: build
build: ## Build the binaries into bin/
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

.PHONY: proto
proto: ## Regenerate the committed Go code of every .proto file with the pinned tools in go.mod
	@./scripts/proto.sh

.PHONY: proto-check
proto-check: ## Fail if the committed generated code differs from what `make proto` would write
	@./scripts/proto.sh -check

.PHONY: lint
lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: examples
examples: ## Regenerate the shipped cost-model examples in examples/
	$(GO) run ./internal/examplegen -out examples

.PHONY: models
models: deps ## Build the model zoo and the trained reference classifier into models/ (cached)
	@./scripts/models.sh

.PHONY: dist
dist: deps ## Release tarballs for linux/amd64 and linux/arm64 into dist/ (binaries, ONNX Runtime, systemd units, example config, licences; docs/deploy.md), each checked by dist-check; VERSION=x.y.z names them (default: the latest tag, else 0.0.0-DATE-COMMIT)
	@./scripts/cross-deps.sh
	@v=$$(./scripts/dist.sh) && ./scripts/dist-check.sh amd64 "$$v" && ./scripts/dist-check.sh arm64 "$$v"

# The test targets build their tarballs into out/dist-test, leaving dist/
# to `make dist`.
DIST_TEST := out/dist-test

.PHONY: dist-check
dist-check: deps models ## Build the linux/arm64 tarball and run it under qemu-user: --version of each binary, and profiling models/tinynet with the bundled ONNX Runtime
	@./scripts/cross-deps.sh
	@rm -f $(DIST_TEST)/dyno-*-linux-arm64.tar.gz
	@DIST_OUT=$(DIST_TEST) DIST_ARCHES=arm64 ./scripts/dist.sh >/dev/null
	@DIST_DIR=$(DIST_TEST) ./scripts/dist-check.sh arm64

.PHONY: guide-check
guide-check: deps ## Build this machine's release tarball and run docs/deploy.md's sh blocks as written (controller, cloud and device executor on loopback)
	@rm -f $(DIST_TEST)/dyno-*-linux-$$($(GO) env GOARCH).tar.gz
	@DIST_OUT=$(DIST_TEST) DIST_ARCHES=$$($(GO) env GOARCH) ./scripts/dist.sh >/dev/null
	@DIST_DIR=$(DIST_TEST) ./scripts/guide-check.sh

.PHONY: influxd-check
influxd-check: ## Check that `scripts/influxd.sh with` (make test) stops the influxd it starts and leaves a running one alone, on a free port of its own
	@./scripts/influxd-check.sh

.PHONY: test
test: deps lint proto-check models influxd-check dist-check guide-check ## Run every test (race detector on) against the real parts; starts influxd for them and stops it after, unless one was running already
	@./scripts/influxd.sh build
	./scripts/influxd.sh with $(GO) test -race -count=1 -timeout 40m ./...

.PHONY: bench
bench: deps ## Run the benchmarks and print the summary tables
	@./scripts/bench.sh

.PHONY: demo
demo: deps models ## Run the whole loop on one machine (controller, cloud executor, emulated devices), then the simulator and offline evaluation (see README); starts influxd for it and stops it after, unless one was running already
	@./scripts/influxd.sh build
	@./scripts/influxd.sh with ./scripts/demo.sh

.PHONY: clean
clean: ## Remove build outputs and fetched parts (.cache/, bin/, models/, dist/)
	rm -rf bin/ .cache/ models/ out/ dist/

# InfluxDB for the learning curves: influxd 1.8.3 built from the Go module
# proxy (scripts/influxd.sh). The controller's tests use the one started
# here (DYNO_INFLUXD_URL) and fail, rather than skip, when it is missing.
export DYNO_INFLUXD_URL ?= http://127.0.0.1:$(or $(DYNO_INFLUXD_PORT),18086)
export DYNO_REQUIRE_INFLUXD := 1

.PHONY: influxd
influxd: ## Build influxd 1.8.3 into .cache/bin (cached, 2-4 min once) and start it on 127.0.0.1:18086 with Flux on (scripts/influxd.sh stop stops it)
	@./scripts/influxd.sh start >/dev/null
