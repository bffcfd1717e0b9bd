# Two entry points (see README): `make demo` runs the server with demo data, `make test` runs
# every check. Both create the virtual environment on first use. `make test-phones` runs the
# phone path's tests alone, e.g. under another supported Python:
#     make test-phones PYTHON=python3.12 VENV=.venv312
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What a phone's fetch goes through, from the socket to the database and back.
PHONE_TESTS := tests/test_phone_concurrency.py tests/test_database_faults.py \
	tests/test_slow_clients.py tests/test_lane.py tests/test_answers.py \
	tests/test_phone_endpoint.py tests/test_lookup.py tests/test_sightings_batched.py \
	tests/test_load.py tests/test_log_masking.py tests/test_background.py \
	tests/test_first_contact.py tests/test_digest.py tests/test_scanner_defence.py \
	tests/test_unknown_devices.py tests/test_fulfilment.py tests/test_rotation.py \
	tests/test_workers.py

.PHONY: demo test lint test-phones

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

test-phones: $(BIN)/provisioning
	$(BIN)/python --version
	$(BIN)/pytest $(wildcard $(PHONE_TESTS))
