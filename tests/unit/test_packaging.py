"""The distribution: what the wheel and the sdist ship, and dependency floors that install together.

Everything here is offline: the builds run with the setuptools already installed
(``--no-build-isolation --no-index``), and the floors are checked against the
dependencies' published requirements, recorded below.
"""
from __future__ import annotations

import configparser
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
# What a build reads; the repository may be mounted read-only, so builds run on a copy.
BUILD_INPUTS = ["setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
                "CHANGELOG.md", "extensions.conf.sample", "pjsip.conf.sample", "src", "agi-bin",
                "contrib", "docs"]
BUILD_TIMEOUT = 120

# Requires-Python and Requires-Dist of the floor releases (and of the release just
# below a floor that exists because of them), as published on PyPI.
PUBLISHED = {
    ("requests", Version("2.29.0")): (">=3.7", ["charset-normalizer<4,>=2", "idna<4,>=2.5", "urllib3<1.27,>=1.21.1",
                                       "certifi>=2017.4.17"]),
    ("requests", Version("2.30.0")): (">=3.7", ["charset-normalizer<4,>=2", "idna<4,>=2.5", "urllib3<3,>=1.21.1",
                                       "certifi>=2017.4.17"]),
    ("urllib3", Version("2.0.2")): (">=3.7", []),
    ("phonenumbers", Version("8.12.0")): ("", []),
    ("pyst2", Version("0.5.1")): ("", ["six>=1.9.0"]),
}
# Releases inside a range that must not be installable: yanked from PyPI.
YANKED = {"urllib3": ["2.0.0", "2.0.1"]}  # truncated bodies when streaming a compressed response


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(str(REPO / "setup.cfg"))
    return cfg


def install_requires() -> dict:
    lines = _setup_cfg().get("options", "install_requires").splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.strip().startswith("#")]
    return {r.name.lower(): r for r in reqs}


def floor(req: Requirement) -> Version:
    bounds = [Version(s.version) for s in req.specifier if s.operator == ">="]
    assert len(bounds) == 1, "%s needs exactly one >= floor" % req
    return bounds[0]


def copy_build_inputs(dest: Path) -> Path:
    dest.mkdir()
    for name in BUILD_INPUTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(str(source), str(dest / name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(str(source), str(dest / name))
    return dest


def run_build(args, cwd: Path) -> None:
    proc = subprocess.run([sys.executable] + args, cwd=str(cwd), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=BUILD_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-4000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The project's wheel, built offline by pip from a copy of the tree."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = copy_build_inputs(tmp / "source")
    out = tmp / "out"
    run_build(["-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "-w", str(out), str(source)], cwd=tmp)
    (built,) = out.glob("synthflow_agi-*.whl")
    with zipfile.ZipFile(str(built)) as archive:
        yield archive


@pytest.mark.host  # builds with the host venv's setuptools (the test extra)
def test_wheel_ships_the_license_text(wheel):
    """The wheel's dist-info holds LICENSE, byte for byte the repository's MIT text."""
    licenses = [n for n in wheel.namelist() if ".dist-info/" in n and n.rsplit("/", 1)[-1] == "LICENSE"]
    assert len(licenses) == 1, wheel.namelist()
    text = wheel.read(licenses[0])
    assert text == (REPO / "LICENSE").read_bytes()
    assert text.startswith(b"MIT License\n\nCopyright (c) 2026 synthflow-agi contributors\n")


@pytest.mark.host  # builds with the host venv's setuptools (the test extra)
def test_wheel_ships_the_package_the_agi_program_and_the_command(wheel):
    """The wheel holds every module, agi-bin/synthflow.agi as a script, and the synthflow-agi command."""
    names = set(wheel.namelist())
    for module in (REPO / "src" / "synthflow_agi").glob("*.py"):
        assert "synthflow_agi/%s" % module.name in names
    scripts = [n for n in names if n.endswith(".data/scripts/synthflow.agi")]
    assert len(scripts) == 1, sorted(names)
    # pip writes the venv's interpreter into the "#!python" line at install time.
    shebang, _, body = wheel.read(scripts[0]).partition(b"\n")
    assert shebang == b"#!python"
    assert body == (REPO / "agi-bin" / "synthflow.agi").read_bytes().partition(b"\n")[2]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "synthflow-agi = synthflow_agi._cli:main" in wheel.read(entry_points).decode()


@pytest.mark.host  # builds with the host venv's setuptools (the test extra)
def test_wheel_metadata_requires_exactly_the_declared_dependencies(wheel):
    """The wheel's Requires-Dist lines are setup.cfg's install_requires, floors and caps included."""
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    lines = wheel.read(metadata).decode().splitlines()
    requires = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    runtime = {r.name.lower(): r.specifier for r in requires if r.marker is None}
    assert runtime == {name: r.specifier for name, r in install_requires().items()}
    assert "Requires-Python: >=3.9" in lines
    assert "License: MIT" in lines or "License-Expression: MIT" in lines


@pytest.mark.host  # builds with the host venv's setuptools (the test extra)
def test_sdist_ships_license_changelog_docs_and_samples(tmp_path):
    """The sdist carries LICENSE, CHANGELOG.md, pyproject.toml, the samples, the unit file and the docs."""
    source = copy_build_inputs(tmp_path / "source")
    out = tmp_path / "out"
    run_build(["-c", "import sys, setuptools.build_meta as b; b.build_sdist(sys.argv[1])", str(out)], cwd=source)
    (built,) = out.glob("synthflow_agi-*.tar.gz")
    with tarfile.open(str(built)) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    expected = {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "setup.cfg", "setup.py",
                "extensions.conf.sample", "pjsip.conf.sample", "contrib/synthflow-agi-fastagi.service",
                "docs/asterisk-notes.md", "agi-bin/synthflow.agi", "src/synthflow_agi/_wire.py"}
    assert expected <= names, sorted(expected - names)


def test_each_floor_release_accepts_the_other_floors():
    """At every dependency's floor release, its own requirements accept our floors of the others."""
    ours = install_requires()
    floors = {name: floor(req) for name, req in ours.items()}
    assert set(floors) == {"pyst2", "requests", "urllib3", "phonenumbers"}
    for name, version in floors.items():
        python, needs = PUBLISHED[(name, version)]
        assert SpecifierSet(python).contains("3.9"), (name, python)
        for need in map(Requirement, needs):
            if need.name.lower() in floors:
                assert need.specifier.contains(floors[need.name.lower()]), (name, str(version), str(need))


def test_requests_floor_is_the_first_release_accepting_urllib3_2():
    """requests 2.29 pins urllib3 below 1.27, so with urllib3 >= 2 the requests floor must exclude it."""
    ours = install_requires()
    _, needs_of_2_29 = PUBLISHED[("requests", Version("2.29"))]
    (urllib3_of_2_29,) = [r for r in map(Requirement, needs_of_2_29) if r.name == "urllib3"]
    assert not urllib3_of_2_29.specifier.contains(floor(ours["urllib3"]))
    assert not ours["requests"].specifier.contains("2.29.0")
    assert ours["requests"].specifier.contains("2.30.0")


def test_no_yanked_release_is_allowed():
    """No range admits a release that PyPI yanked (urllib3 2.0.0 and 2.0.1)."""
    ours = install_requires()
    for name, versions in YANKED.items():
        for version in versions:
            assert not ours[name].specifier.contains(version), (name, version)


def test_pyst2_declares_six_itself():
    """The installed pyst2 brings its own requirement on six, so we need not name it."""
    needs = [Requirement(r) for r in importlib.metadata.requires("pyst2") or []]
    assert any(r.name == "six" and r.marker is None for r in needs), needs
    assert importlib.metadata.version("six")


def test_installed_environment_satisfies_the_declared_ranges():
    """The dependencies installed here fall within setup.cfg's ranges, and pip finds nothing broken."""
    for name, req in install_requires().items():
        assert req.specifier.contains(importlib.metadata.version(name)), (name, str(req.specifier))
    proc = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout
