# Two commands: `make quick` (install, run the quick CPU grid, check it reproduces the committed
# reference) and `make test`. Fresh runs go to outputs/runs/ (git-ignored); the committed
# reference results are in outputs/reference/, updated only by `make publish-<grid>`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUNS   := outputs/runs
REF    := outputs/reference
GRID   := $(PY) -m ntk_utils.grid

.PHONY: install lab quick cpu paper test test-current-jax bench publish-quick publish-cpu report report-reference

install: $(STAMP)

# Re-install whenever the pinned set changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m pip install --quiet --no-deps $$($(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["ntk-limits"]["no-deps"])')
	$(PY) -c 'import ntk_utils; print("ntk_utils ready:", ntk_utils.versions_summary())'
	@touch $@

# JupyterLab on the repository, the notebooks' .py files opening as notebooks (the settings in
# jupyterlab-settings/overrides.json: no per-user setup). LAB_ARGS, e.g. --port 8890 --no-browser.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.app_settings_dir=$(CURDIR)/jupyterlab-settings $(LAB_ARGS)

quick: $(STAMP)
	$(GRID) run parameters/quick.yaml --root $(RUNS)
	$(GRID) compare $(RUNS)/quick $(REF)/quick

cpu: $(STAMP)
	$(GRID) run parameters/cpu.yaml --root $(RUNS)
	$(GRID) compare $(RUNS)/cpu $(REF)/cpu

paper: $(STAMP)
	$(GRID) run parameters/paper.yaml --root $(RUNS)

# Replace the committed reference cells by those of the last fresh run (current cells only).
publish-quick: $(STAMP)
	$(GRID) publish $(RUNS)/quick $(REF)/quick

publish-cpu: $(STAMP)
	$(GRID) publish $(RUNS)/cpu $(REF)/cpu

# Every result read without running anything: a static site in outputs/report/<grid>/ (index.html).
report: $(STAMP)
	$(PY) -m ntk_utils.report $(RUNS)/quick

report-reference: $(STAMP)
	$(PY) -m ntk_utils.report $(REF)/cpu

test: $(STAMP)
	$(PY) -m pytest -q

# The same tests on the newest jax/flax/optax (requirements-current-jax.txt) in a second venv,
# without neural-tangents (it imports only with jax <= 0.5.3): the tests that need it, or the
# pinned versions themselves, skip and say why (tests/conftest.py).
CURRENT       ?= .venv-current
CURRENT_STAMP := $(CURRENT)/.installed

$(CURRENT_STAMP): requirements-current-jax.txt pyproject.toml
	@test -x $(CURRENT)/bin/python || $(PYTHON) -m venv $(CURRENT)
	$(CURRENT)/bin/python -m pip install --quiet --upgrade pip
	$(CURRENT)/bin/python -m pip install --quiet -r requirements-current-jax.txt
	$(CURRENT)/bin/python -m pip install --quiet --no-deps -e .
	NTK_UTILS_SKIP_VERSION_CHECK=1 $(CURRENT)/bin/python -c 'import ntk_utils; print("current jax:", ntk_utils.versions_summary())'
	@touch $@

test-current-jax: $(CURRENT_STAMP)
	NTK_UTILS_SKIP_VERSION_CHECK=1 $(CURRENT)/bin/python -m pytest -q

# Every benchmark in turn (not tests: they measure; each prints its table for benchmarks/README.md).
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
