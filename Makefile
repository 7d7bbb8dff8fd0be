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
	@touch $@

setup: $(BIN)/marquee

demo: setup
	$(BIN)/marquee demo

lint: setup
	$(BIN)/ruff check .

# One worker per core (pytest-xdist); tests with the `pipeline` marker (dbt, `marquee run`, whole
# pipeline runs) are the slow half, and test-fast leaves them out. `loadfile` keeps each module on one
# worker, so a costly module fixture (a week loaded, the demo, a dbt build) is built once, not once per
# worker (`loadgroup` would be finer, but pytest-xdist 3.8 cannot group under pytest 9.2: it renames a
# node id attribute pytest no longer reads); tests/conftest.py starts the modules with slow tests first.
test: setup lint
	$(BIN)/python -m pytest -n auto --dist loadfile

test-fast: setup lint
	$(BIN)/python -m pytest -n auto --dist loadfile -m "not pipeline"

dev: setup
	$(BIN)/marquee dev

clean:
	rm -rf $(VENV) data dbt_project/target dbt_project/logs
