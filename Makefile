# Two entry points (see README): `make demo` runs the server with demo data, `make test` runs
# every check. Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint

$(BIN)/provisioning: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(BIN)/provisioning
	$(BIN)/provisioning serve --demo

lint: $(BIN)/provisioning
	$(BIN)/ruff check provisioning tests benchmarks
	$(BIN)/ruff format --check provisioning tests benchmarks
	$(BIN)/mypy provisioning

test: lint
	$(BIN)/pytest
