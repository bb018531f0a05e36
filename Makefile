# pynq-deploy: the two commands of the README, and the set-up they need.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

FMNIST  = /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

.PHONY: install data detector-data demo demo-bnn test bench clean

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

# Real detector material (vtest.avi, photos, bikes.mp4) into ~/.cache/pynq-deploy/data, and the
# teacher detector's weights: what training and the teacher/detector tests need (not the demo).
detector-data: $(PY)
	bash training/fetch_data.sh
	$(PY) -c "from training.teacher.fetch import ensure_bikes; print(ensure_bikes())"
	$(PY) -m training.teacher.fetch

# The main job: the detector on the bundled clip (demos/data), on the board if one is present with
# the codenet bitstream, else on the simulated PL; writes the annotated video and prints a summary.
demo: install
	mkdir -p out
	$(PY) demos/run_detector.py demos/data/vtest_clip.mp4 --headless --output out/demo_detector.mp4 \
	    --json-lines out/demo_detector.jsonl

# The BNN classifier on 1,000 real Fashion-MNIST test images.
demo-bnn: install data
	$(VENV)/bin/pynq-deploy classify --dataset fashion-mnist --limit 1000

# The test suite (no board needed).
test: install data detector-data
	$(PY) -m pytest -q tests

# The teacher detector's weights (npm @vladmandic/human, not committed) into the cache folder
# (~/.cache/pynq-deploy/teacher, or $PYNQ_DEPLOY_CACHE/teacher); needs npm. Idempotent.
.PHONY: teacher
teacher: $(PY)
	$(PY) -m training.teacher.fetch

bench: install
	$(VENV)/bin/pynq-deploy bench bnn --json out/bench_bnn.json

clean:
	rm -rf $(VENV) out .pytest_cache
