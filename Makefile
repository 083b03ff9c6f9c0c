# glmtune developer commands. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU wheel of torch that this project is tested with. A torch already present in .venv
# (e.g. your CUDA build) is kept as it is.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.glmtune-installed

.PHONY: setup demo test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/glmtune demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check glmtune tests scripts benchmarks
	$(VENV)/bin/ruff format --check glmtune tests scripts benchmarks

format: setup
	$(VENV)/bin/ruff check --fix glmtune tests scripts benchmarks
	$(VENV)/bin/ruff format glmtune tests scripts benchmarks

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis
