"""Build the E2E lab image: host tools, a debootstrapped Debian base, host wheels, the image.

Every expensive result is keyed by a content hash, so a warm run only re-checks hashes:
the base image and the lab image carry their hash as a label, the wheels sit in a folder
named after theirs under ``.cache/e2e/``.  Used by ``tests/e2e/conftest.py`` and
``tools/demo.py``; ``python tests/e2e/lab_build.py`` builds without running anything.
"""
import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "e2e"
IMAGE_PYTHON = {"sid": "3.14", "bullseye": "3.9"}  # the suite's python3, for host wheels
# Only this apt setting differs from a stock debian image: the sid mirror here is an
# expired snapshot (docs/asterisk-notes.md#lab-images).  It goes into the base image, never into the Dockerfile.
BASE_APT_CONF = 'Acquire::Check-Valid-Until "false";\n'
HOST_TOOLS = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap", "sipp": "sip-tester"}
# Files of the repository that the image is built from (besides docker/).
CONTEXT_FILES = ["setup.cfg", "setup.py", "README.md", "extensions.conf.sample", "pjsip.conf.sample", "cdr_custom.conf.sample"]
CONTEXT_DIRS = ["src", "agi-bin", "docker"]
PACKAGE_INPUTS = ["setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "README.md", "src", "agi-bin"]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.whl")
LABEL = "synthflow.e2e.hash"


def say(msg):
    """Progress line for long steps (tests route it past pytest's capture)."""
    print("[e2e %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Run a command; on failure raise with its output, which is the useful diagnosis."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    proc = subprocess.run(cmd, universal_newlines=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-3000:]
        raise RuntimeError("command failed (exit %d): %s\n%s" % (proc.returncode, " ".join(map(str, cmd)), tail))
    return proc.stdout or ""


def digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(paths):
    """Hash of file names and contents below the given paths (the image's inputs)."""
    h = hashlib.sha256()
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc" or any(
                    part.endswith(".egg-info") for part in path.parts):
                continue
            h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------- container engine
def docker_engine_answers():
    """True only when a docker client AND a running engine exist (a bare client is common)."""
    if not shutil.which("docker"):
        return False
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=15,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


class Engine:
    """podman (this machine: docs/asterisk-notes.md#lab-images) or docker when an engine answers."""

    def __init__(self):
        self.docker = docker_engine_answers() and not os.environ.get("SYNTHFLOW_E2E_PODMAN")
        self.cli = "docker" if self.docker else "podman"

    def build_args(self):
        if self.docker:
            return [self.cli, "build", "--network=host"]
        return [self.cli, "build", "--pull=never", "--isolation=chroot", "--network=host", "--layers"]

    def run_args(self):
        if self.docker:
            return [self.cli, "run", "--network=host"]
        return [self.cli, "run", "--runtime", "runc", "--network=host",
                "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]

    def image_label(self, image):
        proc = subprocess.run([self.cli, "image", "inspect", "--format",
                               '{{index .Config.Labels "%s"}}' % LABEL, image],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""


# ---------------------------------------------------------------- set-up steps
def ensure_host_tools(need_podman=True):
    wanted = {cmd: pkg for cmd, pkg in HOST_TOOLS.items() if need_podman or cmd == "sipp"}
    missing = sorted({pkg for cmd, pkg in wanted.items() if not shutil.which(cmd)})
    if not missing:
        return
    say("installing host packages with apt: %s" % " ".join(missing))
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(sudo + ["apt-get", "update"], env=env)
    run(sudo + ["apt-get", "install", "-y", "--no-install-recommends"] + missing, env=env)


def ensure_base_image(engine, suite):
    """docker.io/library/debian:SUITE from debootstrap (podman has no registry here)."""
    image = "docker.io/library/debian:%s" % suite
    if engine.docker:
        return image  # a real engine pulls the official image
    key = digest("base-v1", suite, "minbase", BASE_APT_CONF)
    if engine.image_label(image) == key:
        return image
    rootfs = CACHE / ("rootfs-%s" % suite)
    if rootfs.exists():
        shutil.rmtree(rootfs)
    say("debootstrap --variant=minbase %s (about 30 s)" % suite)
    started = time.time()
    run(["debootstrap", "--variant=minbase", suite, str(rootfs)])
    (rootfs / "etc/apt/apt.conf.d/99snapshot-valid-until").write_text(BASE_APT_CONF)
    say("importing %s (debootstrap took %.0f s)" % (image, time.time() - started))
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        run([engine.cli, "import", "--change", "LABEL %s=%s" % (LABEL, key), "-", image], stdin=tar.stdout)
    finally:
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(rootfs)
    return image


def requirements(section="options", option="install_requires"):
    """A requirement list of setup.cfg (install_requires, or an extra such as test)."""
    cfg = configparser.ConfigParser()
    cfg.read(str(REPO / "setup.cfg"))
    return [line.strip() for line in cfg.get(section, option).splitlines() if line.strip()]


def download_wheels(kind, pyver, reqs):
    """Wheels of reqs (and what they need) for the image's Python, in a folder cached by content."""
    folder = CACHE / ("wheels-%s-%s" % (kind, digest(kind + "-v1", pyver, *reqs)))
    if not folder.exists():
        say("downloading %s wheels for Python %s" % (kind, pyver))
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(str(tmp), ignore_errors=True)
        run([sys.executable, "-m", "pip", "download", "-q", "-d", str(tmp), "--only-binary=:all:",
             "--python-version", pyver, "--implementation", "cp", "--platform", "manylinux2014_x86_64",
             "--platform", "manylinux_2_28_x86_64"] + reqs)
        tmp.rename(folder)
    return folder


# pip download evaluates environment markers on the host's Python, not --python-version's:
# what pytest needs only below 3.11 (and exceptiongroup below 3.13) must be named.
HOST_ONLY_TEST_EXTRAS = ("pjsua2-python",)
OLD_PYTHON_TEST_EXTRAS = ["tomli>=1", "exceptiongroup>=1", "typing_extensions>=4.6"]


def ensure_test_wheels(suite):
    """The test extra's wheels (pytest and its needs) for the image's Python."""
    pyver = IMAGE_PYTHON[suite]
    # The test extra's host-only E2E peers (pjsua2) never run inside an image.
    reqs = [r for r in requirements("options.extras_require", "test")
            if not r.startswith(HOST_ONLY_TEST_EXTRAS)]
    if tuple(map(int, pyver.split("."))) < (3, 11):
        reqs += OLD_PYTHON_TEST_EXTRAS
    return download_wheels("test", pyver, reqs)


def ensure_wheels(suite, extras=()):
    """Host-built wheels for the image's Python (docs/asterisk-notes.md#lab-images): dependencies
    (and those of the named extras of setup.cfg, e.g. metrics) + this project."""
    dep_dirs = [download_wheels("deps", IMAGE_PYTHON[suite], requirements())]
    for extra in extras:
        dep_dirs.append(download_wheels(extra, IMAGE_PYTHON[suite], requirements("options.extras_require", extra)))
    src_key = tree_digest([REPO / n for n in PACKAGE_INPUTS if (REPO / n).exists()])
    own_dir = CACHE / ("wheel-own-%s" % src_key)
    if not own_dir.exists():
        say("building the project wheel")
        # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout.
        src_copy = CACHE / "wheel-src"
        shutil.rmtree(str(src_copy), ignore_errors=True)
        copy_inputs(PACKAGE_INPUTS, src_copy)
        tmp = own_dir.with_suffix(".tmp")
        shutil.rmtree(str(tmp), ignore_errors=True)
        run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp), str(src_copy)])
        shutil.rmtree(str(src_copy), ignore_errors=True)
        tmp.rename(own_dir)
        for old in CACHE.glob("wheel-own-*"):  # wheels of earlier sources: never reused
            if old != own_dir:
                shutil.rmtree(str(old), ignore_errors=True)
    return dep_dirs + [own_dir]


def copy_inputs(names, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(str(source), str(dest / name), ignore=SKIP)
        elif source.exists():
            shutil.copy2(str(source), str(dest / name))


def make_context(wheel_dirs):
    """A clean build context: only the image's inputs, plus wheels under docker/wheels/."""
    ctx = CACHE / "context"
    shutil.rmtree(str(ctx), ignore_errors=True)
    copy_inputs(CONTEXT_FILES + CONTEXT_DIRS, ctx)
    # docker/wheels/ is git-ignored, so a clean clone has no such folder to copy into.
    (ctx / "docker" / "wheels").mkdir(parents=True, exist_ok=True)
    for wheel_dir in wheel_dirs:
        for wheel in wheel_dir.glob("*.whl"):
            shutil.copy2(str(wheel), str(ctx / "docker" / "wheels" / wheel.name))
    return ctx


def ensure_lab_image(suite="sid", offline=True):
    """Everything up to a built lab image; returns (engine, image name)."""
    from lab_lock import LAB_LOCK  # lab_lock imports say() from here

    with LAB_LOCK:
        started = time.time()
        engine = Engine()
        ensure_host_tools(need_podman=not engine.docker)
        base = ensure_base_image(engine, suite)
        wheel_dirs = ensure_wheels(suite)
        inputs = [REPO / n for n in CONTEXT_FILES + CONTEXT_DIRS if (REPO / n).exists()]
        key = digest("lab-v1", suite, engine.cli, engine.image_label(base), tree_digest(inputs + wheel_dirs))
        image = "localhost/synthflow-agi-lab:%s" % suite
        if engine.image_label(image) != key:
            say("building %s from docker/Dockerfile (cold: about a minute for apt; code changes: seconds)" % image)
            ctx = make_context(wheel_dirs)
            args = ["--build-arg", "SUITE=%s" % suite, "--label", "%s=%s" % (LABEL, key)]
            if offline:
                args += ["--build-arg", "PIP_NO_INDEX=1", "--build-arg", "PIP_FIND_LINKS=/opt/wheels"]
            run(engine.build_args() + args + ["-f", str(ctx / "docker" / "Dockerfile"), "-t", image, str(ctx)])
            # The image this build replaced is now untagged: drop it (only ours, by label).
            subprocess.run([engine.cli, "image", "prune", "-f", "--filter", "label=%s" % LABEL],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        say("lab image ready in %.0f s" % (time.time() - started))
        return engine, image


if __name__ == "__main__":
    print(ensure_lab_image(*(sys.argv[1:2] or ["sid"]))[1])
