# Boring on purpose: one virtualenv in .venv, everything installed from pyproject.toml.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: setup demo test test-fast lint dev clean

$(BIN)/marquee: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Parse the dbt project into its manifest now, as the Docker image does at build time; otherwise
	@# the first `marquee demo` pays for it (~10 s). Any later change to the models re-parses on load.
	$(BIN)/python -c "import assets.dbt_project"
	@touch $@

setup: $(BIN)/marquee

demo: setup
	$(BIN)/marquee demo

lint: setup
	$(BIN)/ruff check .

# One worker per core (pytest-xdist); tests with the `pipeline` marker (dbt, `marquee run`, whole
# pipeline runs) are the slow half, and test-fast leaves them out. `loadgroup` keeps a module marked
# xdist_group on one worker, so its costly module fixture (a week loaded, the demo) is built once, and
# spreads every other test on its own; tests/conftest.py starts the slow tests first, and stops the
# run if a pytest/xdist pair ever splits the groups again (see the pytest bound in pyproject.toml).
test: setup lint
	$(BIN)/python -m pytest -n auto --dist loadgroup

test-fast: setup lint
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not pipeline"

dev: setup
	$(BIN)/marquee dev

clean:
	rm -rf $(VENV) data dbt_project/target dbt_project/logs
