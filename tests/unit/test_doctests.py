"""The wire lines and examples in the package's docstrings hold."""

import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = ("_wire", "_sip", "_numbers", "_handoff", "_logging", "_settings", "_agent_transfer")


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_module_examples_pass(name):
    """Every doctest in the module passes, and the module really has some."""
    module = importlib.import_module(f"synthflow_agi.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
