"""Fixtures for the contract tests: the API model, a settings file, the base environment.

Every test runs the real ``agi-bin/synthflow.agi`` as a subprocess; the only things
faked are the far ends it talks to (Asterisk through the AGI peer, Synthflow through
the HTTP model), both speaking their real wire formats.
"""
from __future__ import annotations

from typing import Dict

import pytest

from tests.contract._helpers import AGENT, TOKEN
from tests.support.synthflow_model import SynthflowModel


@pytest.fixture
def model():
    """A fresh Synthflow model per test, accepting only TOKEN."""
    with SynthflowModel(token=TOKEN) as m:
        yield m


@pytest.fixture
def ini(tmp_path):
    """An empty settings file, so /etc/asterisk/synthflow.conf never takes part."""
    path = tmp_path / "synthflow.conf"
    path.write_text("[general]\n")
    return path


@pytest.fixture
def env(model, ini) -> Dict[str, str]:
    """The minimal complete settings, through the environment, pinned to transfer mode.

    Most contract scenarios exercise the REFER path, so they pin it; the default
    mode (dial) is asserted by its own tests with SYNTHFLOW_MODE removed.
    """
    return {"SYNTHFLOW_CONFIG": str(ini), "SYNTHFLOW_API_URL": model.base_url, "SYNTHFLOW_MODE": "transfer",
            # A state directory that does not exist keeps the classic AGI's circuit breaker
            # off whatever this host has in /run; its own tests name a real one.
            "SYNTHFLOW_STATE_DIR": str(ini.parent / "no-breaker-state"),
            "SYNTHFLOW_API_TOKEN": TOKEN, "SYNTHFLOW_MODEL_ID": "model-1",
            "SYNTHFLOW_WORKSPACE_ID": "ws-1", "SYNTHFLOW_AGENT_NUMBER": AGENT,
            "SYNTHFLOW_LOG": "stderr"}
