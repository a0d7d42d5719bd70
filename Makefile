# dlrhub: every target creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test fuzz bench proto proto-check proto-baseline lint fmt chart-check image clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

# The client's editable install carries a copy of the stubs (gen/python/dlrhub/v1): a change
# there reinstalls it.
$(STAMP): pyproject.toml client/pyproject.toml $(wildcard gen/python/dlrhub/v1/*.py)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./client -e '.[dev]'
	@touch $@

venv: $(STAMP)  ## create .venv and install dlrhub with its dev tools

run: $(STAMP)  ## start statusd + gateway on the embedded SQLite store (Ctrl-C stops both)
	$(BIN)/dlrhub run

# Generated stubs live in gen/python and are never edited by hand: change the .proto, run `make proto`.
proto: $(STAMP)  ## regenerate gen/python from proto/
	$(BIN)/buf lint proto
	VENV_BIN=$(BIN) scripts/gen_protos.sh gen/python
	$(BIN)/python -m pip install --quiet --no-deps -e ./client

proto-check: $(STAMP)  ## fail when the committed stubs differ from what proto/ generates
	$(BIN)/buf lint proto
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	VENV_BIN=$(BIN) scripts/gen_protos.sh "$$tmp" && \
	if diff -r -x __pycache__ "$$tmp/dlrhub" gen/python/dlrhub; then \
		echo "proto-check: gen/python matches proto/"; \
	else \
		echo "gen/python is out of date with proto/: run 'make proto' and commit the result" >&2; exit 1; \
	fi

# proto/baseline.binpb is the gRPC API of the last release: `buf breaking` (in `make lint`)
# fails on any change that would break its clients. Rebuild it only when releasing.
proto-baseline: $(STAMP)  ## at a release: record proto/ as the API later changes must keep
	$(BIN)/buf build proto -o proto/baseline.binpb

lint: $(STAMP)  ## ruff, ruff format --check, mypy --strict, buf lint and breaking, hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint proto
	$(BIN)/buf breaking proto --against proto/baseline.binpb
	$(BIN)/hadolint deploy/Dockerfile

chart-check: $(STAMP)  ## render, lint and validate the Helm chart (no cluster, no helm binary)
	$(BIN)/python -m pytest tests/deploy -q

# The image the chart deploys by default: image.repository (dlrhub/dlrhub) tagged with the
# chart's appVersion. Push it where the cluster pulls from: IMAGE=registry.example.com/sms/dlrhub.
IMAGE ?= dlrhub/dlrhub
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' deploy/helm/dlrhub/Chart.yaml)
CONTAINER_ENGINE ?= $(firstword $(foreach engine,docker podman nerdctl,$(shell command -v $(engine) 2>/dev/null)))
IMAGE_BUILD = $(CONTAINER_ENGINE) build -f deploy/Dockerfile -t $(IMAGE):$(IMAGE_TAG) \
	--build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .
image:  ## build the image the chart deploys (IMAGE:appVersion) with docker, podman or nerdctl
	@test -n "$(CONTAINER_ENGINE)" || { \
		echo "make image: no container engine found (looked for docker, podman and nerdctl on PATH);" \
			"install one, or set CONTAINER_ENGINE=<command>" >&2; exit 1; }
	$(IMAGE_BUILD)

fmt: $(STAMP)  ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

FUZZ_EXAMPLES ?= 100000
FUZZ_HTTP_EXAMPLES ?= 10000
fuzz: $(STAMP)  ## long fuzz run (all cores): 100,000 hostile inputs per provider, 10,000 over HTTP
	DLRHUB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) DLRHUB_FUZZ_HTTP_EXAMPLES=$(FUZZ_HTTP_EXAMPLES) \
		$(BIN)/python -m pytest tests/fuzz -p no:cacheprovider -q --timeout=0 -n auto --dist worksteal --hypothesis-show-statistics

BENCH_ARGS ?=
bench: $(STAMP)  ## load test on loopback vs a bare-Sanic ceiling; table + bench/results/*.json
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		{ command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get install -y -qq wrk nghttp2-client >/dev/null; } || \
		{ echo "make bench needs wrk and h2load: apt-get install wrk nghttp2-client" >&2; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

test: $(STAMP) proto-check lint  ## set up and run every test (stub drift, lint, types, pytest)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:  ## remove the venv and caches (keeps var/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
