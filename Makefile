# Two entry points that set everything up on a fresh machine:
#   make demo   - create .venv, install LAM, run `lam compare` (about 2.5 minutes on 2 idle cores: LAM vs all-MiniLM-L6-v2)
#   make test   - create .venv, install LAM with its test extras, run the whole test suite (slowest 15 listed)
#   make lint   - ruff over the package, tests and benchmarks ([tool.ruff] in pyproject.toml)
#   make compare-venv - create .venv-compare with the `compare` extra (sentence-transformers' ONNX and
#                 OpenVINO backends need an older transformers than the test extra): .venv-compare/bin/lam compare
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

COMPARE_VENV := .venv-compare

.PHONY: demo test lint install clean compare-venv

$(VENV)/.installed: pyproject.toml setup.py mmdit_jax/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,bench]" -e "./mmdit_jax[test,parity]"
	$(PY) -c "import lam._cython as c; assert c.AVAILABLE, c.IMPORT_ERROR"
	touch $@

install: $(VENV)/.installed

$(COMPARE_VENV)/.installed: pyproject.toml setup.py constraints-compare.txt
	$(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPARE_VENV)/bin/python -m pip install --quiet -c constraints-compare.txt -e ".[compare]"
	touch $@

compare-venv: $(COMPARE_VENV)/.installed

demo: install
	$(VENV)/bin/lam compare --out out/compare

test: install
	$(PY) -m pytest -q --durations=15

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(COMPARE_VENV) build lam/_cython/*.so lam/_cython/*.c
