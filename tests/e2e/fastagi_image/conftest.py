"""Fixtures for the production image: built (if its inputs changed) under the lab lock, containers per test."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # image_lab

from image_lab import AGENT, TOKEN, Container, build_image  # noqa: E402
from lab_build import Engine, ensure_host_tools  # noqa: E402
from lab_lock import LAB_LOCK  # noqa: E402

from tests.support.synthflow_model import SynthflowModel  # noqa: E402


@pytest.fixture(scope="module")
def image(pytestconfig):
    """(engine, image name), with the lab lock held until the module's last test."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    LAB_LOCK.acquire()
    try:
        with capman.global_and_fixture_disabled():
            engine = Engine()
            ensure_host_tools(need_podman=not engine.docker)
            built = build_image(engine)
        yield engine, built
    finally:
        LAB_LOCK.release()


@pytest.fixture
def model():
    with SynthflowModel(token=TOKEN) as m:
        yield m


@pytest.fixture
def token_file(tmp_path):
    """The token as a file the container's non-root user can read, as a mounted Secret is."""
    path = tmp_path / "synthflow-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o644)
    return path


@pytest.fixture
def start_server(image, model, token_file):
    """Start the image with settings from the environment and a token file; removed afterwards."""
    engine, name = image
    started = []

    def start(command=(), network="host", env=None):
        """command: arguments after the image's ENTRYPOINT (empty: its CMD); env: variables added or replaced."""
        env = dict({"SYNTHFLOW_API_URL": model.base_url, "SYNTHFLOW_API_TOKEN_FILE": "/run/secrets/synthflow-token",
                    "SYNTHFLOW_MODEL_ID": "model-1", "SYNTHFLOW_WORKSPACE_ID": "ws-1",
                    "SYNTHFLOW_AGENT_NUMBER": AGENT}, **(env or {}))
        # What contrib/kubernetes asks of the pod: read-only root, no capabilities.
        options = ["--read-only", "--cap-drop=ALL", "-v", "%s:/run/secrets/synthflow-token:ro" % token_file]
        for key, value in sorted(env.items()):
            options += ["-e", "%s=%s" % (key, value)]
        container = Container(engine, name, options, command, network)
        started.append(container)
        container.wait_for_log("FastAGI listening on agi://")
        return container

    yield start
    for container in started:
        container.remove()
