"""The unit and contract suites, run again under each lab image's own Python (3.9 and 3.14).

The host's venv proves one Python.  Here the same tests run inside the Debian image, on the
interpreter a PBX of that suite ships, against the wheel installed in the image's venv
(/opt/synthflow-agi), with the repository mounted read-only.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # the lab_* modules

from lab_build import IMAGE_PYTHON, REPO, ensure_lab_image, ensure_test_wheels, say  # noqa: E402

INNER_SUITES = ["tests/unit", "tests/contract"]
# The inner run must really have run them: the host counts over 300 of these tests.
MIN_INNER_TESTS = 300
INNER_TIMEOUT = 900


def inner_script(python):
    return (
        "set -e; {py} -V; {py} -m pip install -q --no-index --find-links /wheels --disable-pip-version-check pytest prometheus_client; "
        "cd /repo; exec {py} -m pytest -p no:cacheprovider -q -m 'not host' {suites}"
    ).format(py=python, suites=" ".join(INNER_SUITES))


@pytest.fixture(scope="module")
def inner_runs(pytestconfig, tmp_path_factory):
    """Both images' runs, started together: {suite: (process, its output file)}.

    Most of the contract suite's time is spent waiting (deadlines, grace periods, silent
    peers), so the two containers overlap well; every test binds ephemeral loopback ports.
    """
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    folder = tmp_path_factory.mktemp("interop")
    runs = {}
    try:
        for suite in sorted(IMAGE_PYTHON):
            with capman.global_and_fixture_disabled():
                engine, image = ensure_lab_image(suite)
                wheels = ensure_test_wheels(suite)
                say("running %s on %s's Python %s" % (" and ".join(INNER_SUITES), suite, IMAGE_PYTHON[suite]))
            command = engine.run_args() + [
                "--rm", "-v", "%s:/repo:ro" % REPO, "-v", "%s:/wheels:ro" % wheels, "-e", "PYTHONDONTWRITEBYTECODE=1",
                image, "sh", "-c", inner_script("/opt/synthflow-agi/bin/python")]
            out = open(str(folder / ("%s.log" % suite)), "w+")
            runs[suite] = (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), out)
        yield runs
    finally:
        for proc, out in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            out.close()


@pytest.mark.interop
@pytest.mark.parametrize("suite", sorted(IMAGE_PYTHON))
def test_unit_and_contract_suites_pass_on_the_images_python(suite, inner_runs, pytestconfig):
    """tests/unit and tests/contract pass in the SUITE image, on its system Python, against the installed wheel."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    proc, out = inner_runs[suite]
    try:
        proc.wait(INNER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
    out.seek(0)
    output = out.read()
    assert proc.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    with capman.global_and_fixture_disabled():
        say("%s, Python %s: %s" % (suite, IMAGE_PYTHON[suite], summary))
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= MIN_INNER_TESTS, summary
    assert not re.search(r"failed|error|skipped|xfail", summary), summary
    # The interpreter that ran them, printed first by inner_script (no second container).
    assert output.startswith("Python %s." % IMAGE_PYTHON[suite]), output[:200]
