# Every target sets itself up: a fresh machine needs only python3 (and go for the cluster).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
PIP_CACHE ?= $(HOME)/.cache/voicefleet/pip

.PHONY: serve test lint venv cluster-up cluster-down clean

$(BIN)/.installed: pyproject.toml constraints.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CACHE_DIR=$(PIP_CACHE) $(BIN)/pip install -q --upgrade pip
	PIP_CACHE_DIR=$(PIP_CACHE) $(BIN)/pip install -q -c constraints.txt -e '.[server,operator,dev]'
	PIP_CACHE_DIR=$(PIP_CACHE) $(BIN)/pip install -q --no-deps -c constraints.txt -r requirements-nodeps.txt
	touch $@

venv: $(BIN)/.installed

serve: venv
	$(BIN)/tts-server --host $(HOST) --port $(PORT)

lint: venv
	$(BIN)/ruff check .

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The control plane for humans: kubeconfig in $(CLUSTER_DIR)/kubeconfig, kubectl/helm/... in $(CLUSTER_DIR)/bin.
# The first run builds Kubernetes from Go modules (~10 min on 2 cores; cached in ~/.cache/voicefleet).
CLUSTER_DIR ?= .cluster

cluster-up: venv
	$(BIN)/python -m tests.cluster up --dir $(CLUSTER_DIR)

cluster-down:
	$(PYTHON) -m tests.cluster down --dir $(CLUSTER_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
