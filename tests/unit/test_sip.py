"""Building the agent URI, the Transfer and Dial arguments, and vetting call ids."""

import pytest

from synthflow_agi import _headers, _sip
from synthflow_agi._errors import ApiError, ConfigError, HandoffError

CALL_ID = "ebe4bd96-dcb1-4abd-9aa5-686877dab061"


@pytest.mark.parametrize(
    "transport, port, expected",
    [
        ("udp", 32681, "sip:+15551234567@sip.synthflow.ai:32681"),
        ("tcp", 32681, "sip:+15551234567@sip.synthflow.ai:32681;transport=tcp"),
        ("tls", 32682, "sip:+15551234567@sip.synthflow.ai:32682;transport=tls"),
    ],
)
def test_agent_uri_adds_transport_only_when_not_udp(transport, port, expected):
    """The URI carries ;transport= for TCP and TLS and nothing for UDP."""
    assert _sip.agent_uri("+15551234567", "sip.synthflow.ai", port, transport) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "short", "abc;def-12345", "abc def-12345", "abc\r\ndef-12345", "abc%3Bdef-1234", "ab>c-12345678",
     "-leading-dash", "x" * 129, None, 12345678],
)
def test_call_id_rejects_anything_unsafe_for_sip(bad):
    """Ids that could end a header, a URI or a line never reach SIP."""
    with pytest.raises(ApiError):
        _sip.validate_call_id(bad)


def test_pjsip_transfer_embeds_the_header_in_a_bracketed_refer_to():
    """PJSIP gets the bracketed URI with X-EI as a URI header and ';' as %3B."""
    uri = _sip.agent_uri("+15551234567", "127.0.0.1", 32681, "tcp")
    assert _sip.transfer_destination("PJSIP", uri, f"?X-EI=S.{CALL_ID}%3B") == (
        f"PJSIP/<sip:+15551234567@127.0.0.1:32681;transport=tcp?X-EI=S.{CALL_ID}%3B>"
    )


def test_chan_sip_transfer_never_doubles_the_scheme():
    """chan_sip wraps the destination itself, so no '<sip:' may be sent to it (docs/asterisk-notes.md#chan_sip-forms)."""
    uri = _sip.agent_uri("+15551234567", "h.example", 32681, "udp")
    destination = _sip.transfer_destination("SIP", uri, f"?X-EI=S.{CALL_ID}%3B")
    assert destination == f"SIP/+15551234567@h.example:32681?X-EI=S.{CALL_ID}%3B"
    assert "<" not in destination and "sip:" not in destination


@pytest.mark.parametrize("technology", ["IAX2", "Local", "DAHDI", ""])
def test_transfer_refuses_technologies_it_cannot_refer(technology):
    """Other technologies get a clear TRANSFER_FAILED reason naming mode=dial."""
    with pytest.raises(HandoffError, match="use mode=dial"):
        _sip.transfer_destination(technology, "sip:+1555@h:1", f"?X-EI=S.{CALL_ID}%3B")


def test_dial_arguments_use_the_endpoint_and_handler():
    """Dial goes through the PJSIP endpoint to the agent URI with the pre-dial handler."""
    assert _sip.dial_arguments("pjsip", "synthflow", "sip:+15551234567@h:32681;transport=tcp", 25, "ctx^s^1") == (
        "PJSIP/synthflow/sip:+15551234567@h:32681;transport=tcp,25,b(ctx^s^1)"
    )


def test_chan_sip_dial_names_the_host_not_an_endpoint():
    """chan_sip dials user@host:port (its on-the-fly peer), with the same pre-dial handler."""
    assert _sip.dial_arguments("sip", "synthflow", "sip:+15551234567@sip.example:32681", 25, "ctx^s^1") == (
        "SIP/+15551234567@sip.example:32681,25,b(ctx^s^1)"
    )


def test_chan_sip_dial_refuses_a_uri_parameter():
    """A ;transport= parameter cannot ride in a chan_sip dial string, so it is refused, not dropped."""
    with pytest.raises(ConfigError, match="chan_sip"):
        _sip.dial_arguments("sip", "synthflow", "sip:+15551234567@h:32681;transport=tcp", 25, "ctx^s^1")


@pytest.mark.parametrize("host", ["h;maddr=10.0.0.1", "h>x", "a b", "", "h:5060", "-h"])
def test_host_validation_rejects_uri_syntax(host):
    """A sip_host cannot smuggle parameters, ports or brackets into the URI."""
    with pytest.raises(ConfigError):
        _sip.validate_host(host)


def test_x_ei_value_has_the_documented_grammar():
    """X-EI is S.<id>; exactly."""
    assert _headers.x_ei(CALL_ID) == f"S.{CALL_ID};"
