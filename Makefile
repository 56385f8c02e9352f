# amc-cosim: `make sim` runs the main job, `make test` the test suite; both install what is missing first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
STAMP  := $(VENV)/.installed
SWEEP  ?= precision_levels_gain

.PHONY: install ngspice sim test test-fast bench data sweep clean examples cost-cnn4

install: ngspice $(STAMP)

# Debian's ngspice (standalone, for `ngspice -b`) and libngspice0 (the shared library PySpice loads).
ngspice:
	@if command -v ngspice >/dev/null 2>&1 && ldconfig -p | grep -q libngspice; then \
		echo "ngspice: present ($$(ngspice --version 2>/dev/null | grep -m1 -o 'ngspice-[0-9]*'))"; \
	else \
		echo "ngspice: installing Debian packages ngspice and libngspice0"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ngspice libngspice0; \
	fi

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,dask,torch]"
	$(PY) -m pip install -q --no-deps backpack-for-pytorch==1.7.1 unfoldNd==0.2.3 einops==0.8.2  # test-only K-FAC reference; --no-deps: its torchvision requirement would pull another torch
	$(PY) -m ipykernel install --user --name python3 >/dev/null 2>&1 || true
	@touch $(STAMP)

sim: install
	$(PY) -m workflow.main_job

test: install
	$(PY) -m pytest -q

# Daily tier: everything not marked slow (the full `make test` is what CI runs).
test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	@$(PY) -m pip install -q torch==2.13.0 || echo "torch 2.13.0 not installable here: the PyTorch row is skipped"
	$(PY) benchmarks/bench_runner.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_precision_scale.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_gpu_cholesky.py

sweep: install
	$(VENV)/bin/amc sweep configs/sweeps/$(SWEEP).yaml

# The larger task priced to its target from its own simulated run: the 4-layer CNN's circuit study (one-step INV on
# 128x128 arrays, BlockAMC above, beside its exact twin), then the ledger at every factor's measured lambda_min:
# per step, per epoch and the whole run to the target accuracy, and the network table.
CNN4_STUDY ?= results/compare/emnist-am-cnn4-circuit/final
cost-cnn4: install
	$(VENV)/bin/amc compare configs/compare/emnist-am-cnn4-circuit.yaml --jobs 1
	$(VENV)/bin/amc cost training configs/train/emnist-am-cnn4-kfac-circuit.yaml --array-size 128 --study $(CNN4_STUDY)
	$(VENV)/bin/amc cost network cnn4 --classes 13 --study $(CNN4_STUDY)

data: install
	$(PY) -m training.download data/emnist

examples: install
	$(PY) netlists/make_examples.py

clean:
	rm -rf results .pytest_cache
