"""Settings that cannot be used are a value; the log never shows the token, whatever its form."""
from __future__ import annotations

import io
import itertools
import logging
import tracemalloc

from synthflow_agi._call import CallInfo
from synthflow_agi._handoff import Edges, hand_off
from synthflow_agi._logging import LOGGER, RedactingFilter, configure
from synthflow_agi._settings import Base, load_base
from tests.unit.test_handoff import MemoryApi, MemoryChannel

TOKEN = "sk-live-0123456789abcdef"


def _record(message, *args, exc_info=None):
    return logging.LogRecord("synthflow_agi", logging.INFO, __file__, 1, message, args, exc_info)


def test_the_filter_redacts_message_arguments_and_tracebacks():
    """The filter removes the token from the formatted message and from an exception's text."""
    flt = RedactingFilter([TOKEN])
    record = _record("sent %s to %s", "Bearer " + TOKEN, "api")
    assert flt.filter(record) is True
    assert record.getMessage() == "sent Bearer *** to api"
    try:
        raise ValueError("header was " + TOKEN)
    except ValueError:
        import sys
        failing = _record("boom", exc_info=sys.exc_info())
    flt.filter(failing)
    assert TOKEN not in failing.exc_text and "header was ***" in failing.exc_text


def test_the_token_as_configured_and_as_trimmed_are_both_redacted(tmp_path):
    """A token with stray spaces in the environment is redacted in both forms, longest first."""
    path = tmp_path / "synthflow.conf"
    path.write_text("[general]\n")
    base = load_base({"SYNTHFLOW_CONFIG": str(path), "SYNTHFLOW_API_TOKEN": "  %s  " % TOKEN,
                      "SYNTHFLOW_MODEL_ID": "m", "SYNTHFLOW_WORKSPACE_ID": "w", "SYNTHFLOW_AGENT_NUMBER": "+15551234567"})
    assert base.usable and set(base.secrets) == {"  %s  " % TOKEN, TOKEN}
    stream = io.StringIO()
    configure("stderr", secrets=base.secrets, stream=stream)
    try:
        LOGGER.info("token=[%s] and [%s]", "  %s  " % TOKEN, TOKEN[:-1] + TOKEN[-1])
    finally:
        configure("stderr")
    assert TOKEN not in stream.getvalue()
    assert "token=[***] and [***]" in stream.getvalue()


def test_unusable_settings_keep_their_token_for_redaction(tmp_path):
    """Settings refused for another value still know the token, so an error line cannot leak it."""
    path = tmp_path / "synthflow.conf"
    path.write_text("[general]\napi_token = %s\nmode = tranfser\n" % TOKEN)
    base = load_base({"SYNTHFLOW_CONFIG": str(path)})
    assert not base.usable and "mode 'tranfser'" in base.error
    assert TOKEN in base.secrets


def test_a_broken_configuration_costs_no_memory_per_call():
    """A thousand calls on unusable settings leave no per-call garbage behind (no re-raised exception)."""
    base = Base({}, "config file /etc/asterisk/synthflow.conf: unknown setting(s) modle_id")
    ticks = itertools.count()
    edges = Edges(api_for=lambda settings: MemoryApi(), to_e164=lambda raw, region, role: raw,
                  clock=lambda: next(ticks) / 1000.0)
    call = CallInfo("U1", "PJSIP", "+15551230000", ())

    def one_call():
        outcome = hand_off(MemoryChannel(), call, base, edges)
        assert outcome.status.value == "CONFIG_ERROR"

    for _ in range(50):
        one_call()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            one_call()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, grown
