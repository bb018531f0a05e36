# pynq-deploy: the two commands of the README, and the set-up they need.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

FMNIST  = /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: install data demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Everything for the simulated board, the C-simulation, training and tests (CPU torch from disk).
install: $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[sim,train,measure,dev]"

# Real test data: Fashion-MNIST from Debian (needs root, or install it yourself).
data:
	@test -f $(FMNIST) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2; exit 1; fi; }

# The main job: the demo on the bundled sample, on the simulated board unless a real one is present.
demo: install data
	$(VENV)/bin/pynq-deploy classify --dataset fashion-mnist --limit 1000

# The test suite (no board needed).
test: install data
	$(PY) -m pytest -q tests

bench: install
	$(VENV)/bin/pynq-deploy bench bnn --json out/bench_bnn.json

clean:
	rm -rf $(VENV) out .pytest_cache
