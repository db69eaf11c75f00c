# `make test` is the one command CI runs (.ci/run): from a fresh machine it
# installs the tools and the venv, then runs unit, contract and E2E tests.
VENV ?= .venv
PYTEST = $(VENV)/bin/python -m pytest

.PHONY: test unit contract e2e interop demo bench bootstrap clean

test: bootstrap
	$(PYTEST) tests

unit: bootstrap
	$(PYTEST) tests/unit

contract: bootstrap
	$(PYTEST) tests/contract

e2e: bootstrap
	$(PYTEST) tests/e2e

interop: bootstrap
	$(PYTEST) tests/interop

demo: bootstrap
	$(VENV)/bin/python tools/demo.py $(ARGS)

# The benchmark (bench/README.md): not a test; prints a table and writes a PNG.
bench: bootstrap
	$(VENV)/bin/python -m pip install -q -e '.[test,bench]'
	$(VENV)/bin/python bench/run.py $(ARGS)

bootstrap:
	tools/bootstrap.sh

clean:
	rm -rf $(VENV) .cache build dist src/*.egg-info
