# kblocks — two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest-xdist workers for `make test` (CI has 2 cores); each test file stays in one worker.
JOBS   ?= 2

.PHONY: demo lint test test-fast bench-build clean docs

# Create the virtual environment and install kblocks with TensorFlow, Keras Tuner and the test tools.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e ".[tf,tune,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m kblocks.demo

# ruff (rule set and reasons in pyproject.toml) and the import contracts (.importlinter) first.
# PYTHONPATH: the contracts are checked on this checkout even where the venv was installed elsewhere.
lint: $(STAMP)
	$(BIN)/ruff check .
	PYTHONPATH=$(CURDIR) $(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q -m "not gpu" -n $(JOBS) --dist loadfile --durations=20

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not gpu" -x

docs: $(STAMP)
	$(BIN)/python docs/make_zoo_table.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis runs
