"""direct_media: in dial mode, RTP flows customer <-> agent and only signalling stays in Asterisk."""
import doctest

import pytest

import lab_rtp
from lab_rtp import RtpSink, asterisk_rtp_packets
from lab_run import AGENT, CUSTOMER_UAS, SYNTHFLOW

CUSTOMER_DIRECT_UAS = 15074  # the customer-direct AOR in docker/asterisk/pjsip.conf
# The media addresses each SIPp advertises (also in sipp/*.xml); RtpSinks listen there.
CUSTOMER_MEDIA, AGENT_MEDIA = 35074, 42690
# SIPp's rtp_stream sends from its -mp port, which lab_peers sets to the SIP port + 10000.
CUSTOMER_DIRECT_SOURCE = ("127.0.0.1", CUSTOMER_DIRECT_UAS + 10000)
CUSTOMER_ANCHORED_SOURCE = ("127.0.0.1", CUSTOMER_UAS + 10000)
AGENT_SOURCE = ("127.0.0.1", SYNTHFLOW + 10000)
STREAM_PACKETS = 25  # 0.5 s of PCMU at 20 ms, 160 bytes each
# Strict RTP (on by default) drops a new source's first packets while it learns the source
# (rtp.conf probation, 4 by default), and logs only the packets it accepts.
STRICT_RTP_PROBATION = 4
CALL_ID_DIRECT = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00011"  # also in sipp/agent_direct.xml
CALL_ID_ANCHORED = "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00012"  # also in sipp/agent_anchored.xml


@pytest.fixture
def stream_file(tmp_path):
    """SIPp's rtp_stream argument: 0.5 s of PCMU silence, played once, payload type 0."""
    path = tmp_path / "silence.ulaw"
    path.write_bytes(b"\xff" * (160 * STREAM_PACKETS))
    return "%s,1,0" % path


@pytest.fixture
def rtp_debug(call):
    """Asterisk logs every RTP packet it receives or relays while the test runs."""
    call.asterisk.cli("rtp set debug on")
    yield
    call.asterisk.cli("rtp set debug off")


def sources(packets):
    return sorted({source for source, _, _ in packets})


def place_call(call, context, endpoint, customer_xml, customer_port, agent_xml, stream_file):
    agent = call.sipp("agent", agent_xml, SYNTHFLOW, keys={"rtp_stream": stream_file})
    customer = call.sipp("customer", customer_xml, customer_port, keys={"rtp_stream": stream_file})
    call.originate(context, {"CUSTOMER_NUMBER": "+12125550199"}, endpoint=endpoint)
    agent.assert_passed()
    customer.assert_passed()
    return call.result()


@pytest.mark.e2e
def test_direct_media_reinvites_both_legs_and_no_rtp_passes_asterisk(call, stream_file, rtp_debug):
    """After the agent answers, each leg is re-INVITEd to the other's media and all RTP goes peer to peer."""
    call.model.script({"kind": "ok", "call_id": CALL_ID_DIRECT})
    with RtpSink(CUSTOMER_MEDIA) as at_customer, RtpSink(AGENT_MEDIA) as at_agent:
        # The SIPp scenarios check each re-INVITE's c=/m= lines exactly: the customer is sent
        # 127.0.0.1:42690 (the agent's), the agent 127.0.0.1:35074 (the customer's).
        result = place_call(call, "e2e-direct-media", "customer-direct", "customer_direct.xml",
                            CUSTOMER_DIRECT_UAS, "agent_direct.xml", stream_file)
        to_agent, to_customer = at_agent.packets(), at_customer.packets()
    assert result["status"] == "SUCCESS"
    assert result["target"] == "sip:%s@127.0.0.1:%d" % (AGENT, SYNTHFLOW)
    # Every packet reached each side straight from the other SIPp, none from Asterisk.
    assert sources(to_agent) == [CUSTOMER_DIRECT_SOURCE]
    assert sources(to_customer) == [AGENT_SOURCE]
    assert len(to_agent) == STREAM_PACKETS
    assert len(to_customer) == STREAM_PACKETS
    assert asterisk_rtp_packets(call.log()) == []
    (post,) = call.posts()
    assert post["body"]["from_number"] == "+12125550199"


@pytest.mark.e2e
def test_anchored_control_call_shows_rtp_through_asterisk(call, stream_file, rtp_debug):
    """The same call through the direct_media=no endpoints gets no re-INVITE and its RTP is seen crossing Asterisk."""
    call.model.script({"kind": "ok", "call_id": CALL_ID_ANCHORED})
    with RtpSink(CUSTOMER_MEDIA) as at_customer, RtpSink(AGENT_MEDIA) as at_agent:
        result = place_call(call, "e2e-direct-media-anchored", "customer", "customer_anchored.xml",
                            CUSTOMER_UAS, "agent_anchored.xml", stream_file)
        to_agent, to_customer = at_agent.packets(), at_customer.packets()
    assert result["status"] == "SUCCESS"
    received = [(host, port) for direction, host, port in asterisk_rtp_packets(call.log()) if direction == "Got"]
    assert received.count(CUSTOMER_ANCHORED_SOURCE) == STREAM_PACKETS - STRICT_RTP_PROBATION
    assert received.count(AGENT_SOURCE) == STREAM_PACKETS - STRICT_RTP_PROBATION
    # Nothing went peer to peer.  (What Asterisk relays goes to the SIPp's own media port,
    # which rtp_symmetric learned, not to the SDP's address, so the sinks may stay empty.)
    assert CUSTOMER_ANCHORED_SOURCE not in sources(to_agent)
    assert AGENT_SOURCE not in sources(to_customer)


def test_rtp_evidence_parsers_examples_pass():
    """The RTP and log-line parsers behind this scenario's evidence hold their documented examples."""
    result = doctest.testmod(lab_rtp)
    assert result.attempted > 0
    assert result.failed == 0
