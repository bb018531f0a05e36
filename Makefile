# pynq-deploy: the two commands of the README, and the set-up they need.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: install demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Everything for the simulated board, the C-simulation, training and tests (CPU torch from disk).
install: $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[sim,train,dev]"

# The main job: the demo on the bundled sample, on the simulated board unless a real one is present.
demo: install
	$(VENV)/bin/pynq-deploy classify --dataset fashion-mnist --limit 1000

# The test suite (no board needed).
test: install
	$(PY) -m pytest -q tests

bench: install
	$(VENV)/bin/pynq-deploy bench bnn --json out/bench_bnn.json

clean:
	rm -rf $(VENV) out .pytest_cache
