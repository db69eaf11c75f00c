"""The failover lab, started once for this folder's tests (Asterisk 22 only: the mechanisms are Asterisk's and HAProxy's, not the version's)."""
import secrets
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # failover_lab
sys.path.insert(0, str(HERE.parent / "fastagi_image"))  # image_lab

from failover_lab import FailoverLab  # noqa: E402
from lab_build import CACHE  # noqa: E402


@pytest.fixture(scope="module")
def failover(pytestconfig):
    """A running FailoverLab; every set-up failure fails the tests (never skipped)."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    lab = FailoverLab(CACHE / "run-pytest" / "failover", "e2e-secret-" + secrets.token_hex(12))
    try:
        with capman.global_and_fixture_disabled():
            lab.start()
    except Exception as exc:  # noqa: BLE001 - any set-up failure is the test failing
        pytest.fail("failover lab could not start (never skipped): %s" % exc, pytrace=False)
    try:
        yield lab
    finally:
        lab.stop()
