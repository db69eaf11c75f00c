# `make test` is the one command CI runs (.ci/run): from a fresh machine it
# installs the tools and the venv, then runs unit, contract and E2E tests.
VENV ?= .venv
PYTEST = $(VENV)/bin/python -m pytest

.PHONY: test unit contract e2e demo bootstrap clean

test: bootstrap
	$(PYTEST) tests

unit: bootstrap
	$(PYTEST) tests/unit

contract: bootstrap
	$(PYTEST) tests/contract

e2e: bootstrap
	$(PYTEST) tests/e2e

demo: bootstrap
	$(VENV)/bin/python tools/demo.py $(ARGS)

bootstrap:
	tools/bootstrap.sh

clean:
	rm -rf $(VENV) .cache build dist src/*.egg-info
