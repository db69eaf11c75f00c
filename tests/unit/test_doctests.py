"""The wire lines and examples in the package's docstrings hold."""

import doctest
import importlib
import pkgutil

import pytest

import synthflow_agi

MODULES = sorted(m.name for m in pkgutil.iter_modules(synthflow_agi.__path__) if not m.name.startswith("__"))
# Modules whose rules are shown by example; each must keep having some.
MODULES_WITH_EXAMPLES = ("_agent_transfer", "_api", "_breaker", "_checks", "_clusters", "_handoff", "_headers", "_logging",
                         "_numbers", "_options", "_peers", "_probe", "_refer", "_sip", "_text", "_wire")


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_pass(name):
    """Every doctest in every module of the package passes; the modules that show rules by example have some."""
    module = importlib.import_module(f"synthflow_agi.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
    assert result.attempted > 0 or name not in MODULES_WITH_EXAMPLES
