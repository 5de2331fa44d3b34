# Two entry points for a new user: `make demo` (install + render an example film on the
# built-in model) and `make test` (install + run the tests). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests and renders use one BLAS thread: two busy torch processes on a small machine slow
# each other down by an order of magnitude.
TORCH_ENV := OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build: a plain resolve on Linux pulls a multi-GB CUDA build.
	# A local wheel cache (find-links) may carry 2.13.0+cpu; otherwise PyTorch's CPU index has it.
	$(PY) -m pip install --quiet "torch==2.13.0+cpu" 2>/dev/null \
		|| $(PY) -m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(TORCH_ENV) $(VENV)/bin/storyboard render examples/chase.toml -o renders/chase.mp4
	@echo "open renders/chase.mp4 (timeline: renders/chase.otio, contact sheet: renders/chase.sheet.png)"

test: install
	$(TORCH_ENV) $(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) renders examples/.storyboard
