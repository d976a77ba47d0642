# The two commands of the README. Each sets up its own virtualenv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest's exit code 5 means "no tests collected": not a failure for CI.
PYTEST_OK_NO_TESTS = || { code=$$?; [ $$code -eq 5 ] && echo "pytest: no tests collected" || exit $$code; }

.PHONY: demo test setup

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-lock.txt corpus/pipeline/_text_units.c tokenization/_longest_match.c corpus/dataset/_pickle_sharing.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements-lock.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bee demo

test: $(STAMP)
	$(BIN)/python -m schemas.export --check
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS) $(PYTEST_OK_NO_TESTS)
