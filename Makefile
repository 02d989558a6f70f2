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
PYTEST_ARGS ?= -m "not slow" --durations=25

# MONAI Label environment (docs/monai-label.md): its own venv, because MONAI Label needs torchvision, which
# does not import beside the CPU torch 2.13 wheel; torch 2.14.1 + torchvision 0.29.1 come from local wheels.
LABEL_VENV ?= .venv-label
LABEL_PY := $(LABEL_VENV)/bin/python
LABEL_STAMP := $(LABEL_VENV)/.cardiacseg-installed
LABEL_TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
MONAILABEL_SPEC ?= monailabel==0.8.5

.PHONY: demo test test-slow lint typecheck unit wheel-test venv clean label label-compat sysdeps

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install $(PIP_QUIET) -e ".[dev]"
	$(PY) -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit('CUDA torch build installed; expected CPU' if torch.version.cuda else 0)"
	touch $(STAMP)

# Built once, then kept (the stamp); about 8 GB and 5-10 min from pip's cache on 2 cores.
label: $(LABEL_STAMP)

$(LABEL_STAMP): setup.cfg pyproject.toml requirements/label-constraints.txt
	test -x $(LABEL_PY) || $(PYTHON) -m venv $(LABEL_VENV)
	$(LABEL_PY) -m pip install $(PIP_QUIET) $(LABEL_TORCH_SPEC)
	$(LABEL_PY) -m pip install $(PIP_QUIET) "$(MONAILABEL_SPEC)" -e . pytest -c requirements/label-constraints.txt
	$(LABEL_PY) -m pip check
	$(LABEL_PY) -c "import monailabel, torchvision, numpy, pydicom, cardiacseg.label.app; \
	print('MONAI Label', monailabel.__version__, 'numpy', numpy.__version__, 'pydicom', pydicom.__version__)"
	touch $(LABEL_STAMP)

# cardiacseg under MONAI Label's versions (numpy 1.26, pydicom 2.4): the DICOM/NIfTI reader tests
label-compat: $(LABEL_STAMP)
	$(LABEL_PY) -m pytest -q -p no:cacheprovider tests/io -m "not slow"

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

# the MONAI Label server test (tests/label) runs in `unit` once .venv-label exists
# Debian tools some tests use when present (skipped with the reason otherwise): chromium renders the one-page
# report (tests/clinical/test_html_report.py), dicom3tools' dciodvfy validates the DICOM SEG/SR. Installed
# with apt-get when missing and running as root; never fatal.
SYSDEPS_PACKAGES ?= chromium dicom3tools
sysdeps:
	@if command -v chromium >/dev/null && command -v dciodvfy >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$(SYSDEPS_PACKAGES) >/dev/null) \
		|| echo "sysdeps: apt-get could not install $(SYSDEPS_PACKAGES); their tests will be skipped"; \
	else echo "sysdeps: not root or no apt-get: install $(SYSDEPS_PACKAGES) yourself, else their tests are skipped"; fi

test: lint typecheck label sysdeps unit label-compat wheel-test

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO_OUT)
