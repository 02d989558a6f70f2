# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
# The virtual environment gets the CPU build of torch 2.13.0 first, so that no CUDA wheels are pulled in.
# Where no local CPU wheel is on the pip search path, point pip at a CPU wheel index, e.g.
#   make demo TORCH_PIP_ARGS="--index-url <your CPU wheel index>"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cardiacseg-installed
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PIP_QUIET ?= -q
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install $(PIP_QUIET) -e ".[dev]"
	$(PY) -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit('CUDA torch build installed; expected CPU' if torch.version.cuda else 0)"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cardiacseg demo --output $(DEMO_OUT) --overwrite

lint: $(STAMP)
	$(PY) -m ruff check cardiacseg tests benchmarks examples docs bundles
	$(PY) -m ruff format --check cardiacseg tests benchmarks examples docs bundles

typecheck: $(STAMP)
	$(PY) -m mypy cardiacseg

unit: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
