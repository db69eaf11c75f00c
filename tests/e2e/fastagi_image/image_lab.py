"""Build docker/fastagi.Dockerfile (cached by content hash) and run containers of it.

The image is built from the lab's debootstrapped sid base and host-built wheels (no
registry is reachable from inside a build here), under the host-wide lab lock, which is
also held while its containers run, as it is for the lab's.
"""
import os
import shutil
import subprocess
import time
import uuid

from lab_build import (CACHE, LABEL, REPO, copy_inputs, digest, ensure_base_image, ensure_wheels, run,
                       say, tree_digest)

SUITE = "sid"  # the lab's base; its python3 (3.14) is what the host wheels are built for
IMAGE = "localhost/synthflow-agi-fastagi:e2e"
DOCKERFILE = "docker/fastagi.Dockerfile"
CONTEXT_FILES = ["setup.cfg", "setup.py", "README.md", DOCKERFILE]
CONTEXT_DIRS = ["src", "agi-bin"]
PORT = 4573  # the image's default --listen port
METRICS_PORT = 9573  # its default --metrics-listen port, whose /healthz its HEALTHCHECK asks
OWNER_LABEL = "synthflow.e2e.owner"
TOKEN = "sk-e2e-image-" + uuid.uuid4().hex[:16]
AGENT = "+15557654321"
IMAGE_UID = "10001"


def build_image(engine):
    """The production image from the lab's base and wheels; rebuilt only when an input changed."""
    base = ensure_base_image(engine, SUITE)
    wheel_dirs = ensure_wheels(SUITE, extras=["metrics"])  # the image installs [metrics]
    inputs = [REPO / n for n in CONTEXT_FILES + CONTEXT_DIRS if (REPO / n).exists()]
    key = digest("fastagi-image-v1", SUITE, engine.cli, engine.image_label(base),
                 tree_digest(inputs + wheel_dirs))
    if engine.image_label(IMAGE) == key:
        return IMAGE
    say("building %s from %s" % (IMAGE, DOCKERFILE))
    ctx = CACHE / "context-fastagi"
    shutil.rmtree(str(ctx), ignore_errors=True)
    wheels = ctx / "docker" / "wheels"
    wheels.mkdir(parents=True)
    copy_inputs(CONTEXT_FILES + CONTEXT_DIRS, ctx)
    for wheel_dir in wheel_dirs:
        for wheel in wheel_dir.glob("*.whl"):
            shutil.copy2(str(wheel), str(wheels / wheel.name))
    args = engine.build_args()
    if not engine.docker:
        args.append("--format=docker")  # OCI image configs have no HEALTHCHECK: podman would drop it
    args += ["--build-arg", "BASE=%s" % base, "--build-arg", "PIP_NO_INDEX=1",
             "--build-arg", "PIP_FIND_LINKS=/opt/wheels", "--label", "%s=%s" % (LABEL, key),
             "-f", str(ctx / DOCKERFILE), "-t", IMAGE, str(ctx)]
    run(args)
    subprocess.run([engine.cli, "image", "prune", "-f", "--filter", "label=%s" % LABEL],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return IMAGE


class Container:
    """One detached container of the image, stopped and removed by its id."""

    def __init__(self, engine, image, options, command=(), network="host"):
        self.engine = engine
        prefix = [a for a in engine.run_args() if not a.startswith("--network")]
        self.cid = run(prefix + ["-d", "--network=%s" % network, "--label", "%s=%d" % (OWNER_LABEL, os.getpid())]
                       + list(options) + [image] + list(command)).strip().splitlines()[-1]

    def inspect(self, template):
        return run([self.engine.cli, "inspect", "--format", template, self.cid]).strip()

    def logs(self):
        return run([self.engine.cli, "logs", self.cid])

    def exec_(self, argv):
        return subprocess.run([self.engine.cli, "exec", self.cid] + argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)

    def wait_for_log(self, text, timeout=20.0):
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            if time.monotonic() > deadline or self.inspect("{{.State.Running}}") != "true":
                raise AssertionError("no %r in the container log within %ss:\n%s" % (text, timeout, self.logs()[-3000:]))
            time.sleep(0.1)

    def remove(self):
        subprocess.run([self.engine.cli, "rm", "-f", "-t", "0", self.cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
