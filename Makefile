# weft — see README.md. Targets: build test unit e2e bench bench-scale demo lint clean.
GO          ?= $(shell command -v go || echo /usr/local/go/bin/go)
# Tools run by the tests (the lab builds weft) find the same go.
export PATH := $(dir $(GO)):$(PATH)
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
# Packages with no kernel, no API server and no root: tested with -race too.
PURE        := ./internal/policy/... ./internal/ir/... ./internal/compile/... ./internal/clustergen/... \
               ./internal/explain/... ./internal/manifest/... ./internal/syncer/... ./internal/scenarios/... ./internal/cni/... ./internal/nflog/... ./internal/status/... ./internal/reach/... ./internal/events/... ./internal/legacy/... ./cmd/...

.PHONY: all build test unit race e2e bench bench-scale demo lint clean deps apiserver

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/weft ./cmd/weft
	$(GO) build -ldflags "-X main.buildVersion=$(VERSION)" -o bin/weft-cni ./cmd/weft-cni

## test: everything CI runs — unit tests, race tests of the pure core, and the
## end-to-end suite on the lab (real kernel, real API server; needs root).
test: unit race e2e

unit:
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/e2e)

# -short: the long differential runs (10,000 changes) run in unit; under
# the race detector a tenth of them.
race:
	$(GO) test -count=1 -race -short $(PURE)

e2e:
	$(GO) test -count=1 -timeout 25m ./test/e2e/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/e2e/...

## bench-scale: the end-to-end scale benchmark (test/scale; root, the lab):
## a lab's API server loaded with S1 (1,000 pods / 200 policies), S2 (10,000 /
## 2,000) and S3 (100,000 pods / 10,000 namespaces / 10,000 policies), weft on
## node-1 with each backend, measured by probes between real local pods.
## One scale or backend: make bench-scale SCALE=S2 BACKEND=nftables.
## CHANGES=n times n changes per kind (default 40). S3 takes tens of minutes.
## STARTS=n times only n cold starts (PROFILE=dir saves a CPU profile of the first).
SCALE   ?= .
BACKEND ?= .
bench-scale:
	WEFT_SCALE_CHANGES=$(CHANGES) WEFT_SCALE_STARTS=$(STARTS) WEFT_SCALE_PROFILE=$(if $(PROFILE),$(abspath $(PROFILE))) $(GO) test -run '^$$' -bench 'Scale/$(SCALE)/$(BACKEND)' -benchtime 1x -timeout 240m ./test/scale/

deps:
	./hack/install-deps.sh

apiserver:
	./hack/build-kube-apiserver.sh

demo: deps apiserver
	$(GO) run ./cmd/weft-lab demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

clean:
	rm -rf bin
