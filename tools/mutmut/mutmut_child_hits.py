"""`make mutate`, pytest side: count a subprocess's calls as its test's calls.

Loaded into mutmut's pytest runs with ``-p mutmut_child_hits``. It points the
children at the mutated tree (PYTHONPATH=mutants/src, so a test's subprocess runs
the mutant under test, not the checkout) and, in the statistics run, adds the
functions that children reported (see sitecustomize.py here) to the calls of the
test that was running, before mutmut files them under that test.
"""
import os
import tempfile
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    mutated_src = Path.cwd() / "src"  # mutmut runs pytest inside mutants/
    os.environ["PYTHONPATH"] = os.pathsep.join([str(mutated_src), str(_HERE)])
    if not os.environ.get("MUTMUT_CHILD_HITS_DIR"):
        os.environ["MUTMUT_CHILD_HITS_DIR"] = tempfile.mkdtemp(prefix="mutmut-child-hits-")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        return
    from mutmut.state import state

    for hits in Path(os.environ["MUTMUT_CHILD_HITS_DIR"]).glob("*.hits"):
        try:
            names = hits.read_text().split()
            hits.unlink()
        except FileNotFoundError:
            continue
        state()._stats.update(names)
