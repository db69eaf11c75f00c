"""probe-refer's pure parts: the verdict, when to stop waiting, what it sends and refuses."""

import doctest

import pytest

from synthflow_agi import _probe
from synthflow_agi._errors import ConfigError
from synthflow_agi._probe import (DROPS, KEEPS, NO_ANSWER, NO_RETURN, REFUSES, Observation, judge,
                                  parse_db_get, refer_to, settled, validate_options)

TOKEN = "123456789012"


def test_module_examples_pass():
    """Every doctest in _probe passes, and there are some."""
    result = doctest.testmod(_probe)
    assert result.attempted > 5 and result.failed == 0


@pytest.mark.parametrize("seen, verdict", [
    (Observation(True, "SUCCESS 200", "X-EI:E.probe-123456789012;"), KEEPS),
    (Observation(True, None, "X-EI:E.probe-123456789012;"), KEEPS),  # came back before the NOTIFY
    (Observation(True, "FAILURE 0", "X-EI:E.probe-123456789012;"), KEEPS),  # a malformed NOTIFY, header kept
    (Observation(True, "SUCCESS 200", "X-EI:"), DROPS),
    (Observation(True, "SUCCESS 200", "X-EI:E.probe-123456789012?"), DROPS),  # changed, as baresip 1.1 does
    (Observation(True, "SUCCESS 200", "X-EI:E.probe-999999999999;"), DROPS),  # another probe's token
    (Observation(True, "FAILURE 603"), REFUSES),
    (Observation(True, "UNSUPPORTED 0"), REFUSES),
    (Observation(False), NO_ANSWER),
    (Observation(True, "SUCCESS 200"), NO_RETURN),
    (Observation(True), NO_RETURN),
])
def test_judge_gives_one_verdict_per_observation(seen, verdict):
    """The returned INVITE decides; otherwise the answer and the REFER outcome do."""
    assert judge(seen, TOKEN)[0] == verdict


def test_a_changed_header_is_described_by_its_shape_not_echoed():
    """A carrier's altered X-EI never reaches the output as text, only as a length."""
    _, evidence = judge(Observation(True, "SUCCESS 200", "X-EI:<script>\x1b[31m"), TOKEN)
    assert "<script>" not in evidence and "\x1b" not in evidence and "13 characters" in evidence


@pytest.mark.parametrize("seen, refused_for, done", [
    (Observation(True, "SUCCESS 200", "X-EI:"), 0.0, True),
    (Observation(True, "SUCCESS 200"), 0.0, False),
    (Observation(True, None), 0.0, False),
    (Observation(True, "FAILURE 603"), 1.9, False),
    (Observation(True, "FAILURE 603"), 2.0, True),
])
def test_settled_waits_out_the_refusal_grace_only(seen, refused_for, done):
    """A refusal waits 2 s for a late INVITE; an accepted REFER waits for the INVITE itself."""
    assert settled(seen, refused_for) is done


def test_refer_to_carries_the_token_with_an_escaped_semicolon():
    """The Refer-To is bracketed, names the return host, and escapes ';' as %3B."""
    assert refer_to("synthflow-refer-probe", "[2001:db8::5]:5060", TOKEN, "tls") == (
        "<sip:synthflow-refer-probe@[2001:db8::5]:5060;transport=tls?X-EI=E.probe-123456789012%3B>")


@pytest.mark.parametrize("trunk, number, host, user", [
    ("trunk extension 1@evil", "+15551230000", "pbx", "synthflow-refer-probe"),
    ("trunk", "+1555 hangup", "pbx", "synthflow-refer-probe"),
    ("trunk", "+15551230000", "pbx;maddr=10.0.0.1", "synthflow-refer-probe"),
    ("trunk", "+15551230000", "pbx:99999", "synthflow-refer-probe"),
    ("trunk", "+15551230000", "pbx", "probe?X-EI=x"),
    ("trunk", "+15551230000", "pbx", 'probe" extension'),
])
def test_options_that_could_add_cli_arguments_or_uri_parts_are_refused(trunk, number, host, user):
    """Anything beyond a plain endpoint, number, host[:port] and user part is a ConfigError."""
    with pytest.raises(ConfigError):
        validate_options(trunk, number, host, user)


def test_database_get_output_distinguishes_absent_from_empty():
    """`database get` of a missing key is None; an empty stored X-EI is 'X-EI:'."""
    assert parse_db_get("Database entry not found.\n") is None
    assert parse_db_get("Value: X-EI:\n") == "X-EI:"
    assert len(parse_db_get("Value: " + "x" * 5000 + "\n")) == 512
