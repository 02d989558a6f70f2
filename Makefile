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
# the default run leaves out tests marked slow (long trainings, a second wheel build): `make test-slow`
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test test-slow lint typecheck unit wheel-test venv clean

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

# The wheel works anywhere: build it, install it NON-editable into a fresh venv outside the checkout, and
# run `cardiacseg demo` and `cardiacseg segment --fast` on the packaged sample from a folder outside it.
# Temporary folders are removed on exit. About 2-4 min on 2 cores (dependency install from pip's cache).
wheel-test: $(STAMP)
	@set -eu; T=$$(mktemp -d); trap 'rm -rf "$$T"' EXIT; REPO=$$(pwd); start=$$(date +%s); \
	rm -rf build; \
	$(PY) -m pip wheel $(PIP_QUIET) --no-deps --no-build-isolation -w "$$T/dist" . ; \
	rm -rf build; \
	WHL=$$(ls "$$T"/dist/cardiacseg-*.whl); echo "wheel-test: built $$WHL"; \
	$(PY) -m zipfile -l "$$WHL" > "$$T/listing.txt"; \
	for f in cardiacseg/cardiac_cine_seg/configs/inference.json cardiacseg/cardiac_cine_seg/configs/metadata.json \
		cardiacseg/cardiac_cine_seg/configs/logging.conf cardiacseg/cardiac_cine_seg/models/model.pt \
		cardiacseg/cardiac_cine_seg/LICENSE cardiacseg/cardiac_cine_seg/docs/README.md \
		cardiacseg/data/demo/SCD0000101/contours cardiacseg/data/demo/SCD0000101/dicom \
		cardiacseg/slice_range_classifier/configs/inference.json cardiacseg/slice_range_classifier/models/model.pt \
		cardiacseg/schemas/bundle_metadata.json; do \
		grep -q "$$f" "$$T/listing.txt" || { echo "wheel-test: $$f missing from the wheel"; exit 1; }; done; \
	$(PYTHON) -m venv "$$T/venv"; \
	"$$T/venv/bin/python" -m pip install $(PIP_QUIET) "$(TORCH_SPEC)" $(TORCH_PIP_ARGS); \
	"$$T/venv/bin/python" -m pip install $(PIP_QUIET) "$$WHL"; \
	cd "$$T"; \
	"$$T/venv/bin/python" -c "import cardiacseg.demo as d, sys; p = str(d.demo_study_path()); \
	sys.exit(f'not installed: {p}' if p.startswith('$$REPO') or 'site-packages' not in p else 0)"; \
	"$$T/venv/bin/cardiacseg" --version; \
	"$$T/venv/bin/cardiacseg" demo -o "$$T/demo"; \
	test -s "$$T/demo/report.json" && test -s "$$T/demo/overlay_model.png"; \
	DICOM=$$("$$T/venv/bin/python" -c "import cardiacseg.demo as d; print(d.demo_study_path() / 'dicom')"); \
	"$$T/venv/bin/cardiacseg" segment "$$DICOM" -o "$$T/seg" --fast --quiet --slice-range classifier; \
	R=$$(ls "$$T"/seg/*/report.json | head -1); test -s "$$R"; \
	"$$T/venv/bin/python" -c "import json, sys; r = json.load(open(sys.argv[1])); \
	sys.exit(0 if r['slice_range_mode'] == 'classifier' and r['slice_classes'] else 'no slice classes')" "$$R"; \
	echo "wheel-test: OK in $$(( $$(date +%s) - start )) s (demo and segment --slice-range classifier from a non-editable install)"

test: lint typecheck unit wheel-test

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
