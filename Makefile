# Two commands: `make quick` (install, then run the quick CPU grid) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install quick paper test bench clean-outputs

install: $(STAMP)

# Re-install whenever the pinned set changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["ntk-limits"]["no-deps"])')
	$(PY) -c 'import ntk_utils; print("ntk_utils ready:", ntk_utils.versions_summary())'
	@touch $@

quick: $(STAMP)
	$(PY) -m ntk_utils.grid run parameters/quick.yaml

paper: $(STAMP)
	$(PY) -m ntk_utils.grid run parameters/paper.yaml

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/run_all.py
