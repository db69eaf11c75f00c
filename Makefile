# `make test` is the one command CI runs (.ci/run): from a fresh machine it
# installs the tools and the venv, then runs unit, contract and E2E tests.
VENV ?= .venv
PYTEST = $(VENV)/bin/python -m pytest

.PHONY: test unit contract e2e interop demo bench mutate bootstrap clean

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

# Mutation testing (not part of `make test`): mutmut over the pure core and the HTTP
# edge ([tool.mutmut] in pyproject.toml) with tests/unit and tests/contract, stopped
# after MUTATE_SECONDS; `.venv/bin/mutmut show NAME` prints one surviving mutant.
MUTATE_SECONDS ?= 3600
mutate: bootstrap
	$(VENV)/bin/python -m pip install -q 'mutmut >= 3.8, < 4'
	rm -rf mutants && mkdir -p .cache
	PYTHONPATH=$(CURDIR)/tools/mutmut timeout $(MUTATE_SECONDS) $(VENV)/bin/mutmut run --max-children 2 \
	  > .cache/mutate.log 2>&1 || [ $$? -eq 124 ] || { tail -n 40 .cache/mutate.log; exit 1; }
	$(VENV)/bin/python tools/mutmut/report.py

bootstrap:
	tools/bootstrap.sh

clean:
	rm -rf $(VENV) .cache build dist mutants src/*.egg-info
