#!/usr/bin/env python3
"""One originate call end to end in the lab, shown as the API exchange and a SIP ladder.

    python tools/demo.py                  # customer answers -> prepare_inbound -> Dial with X-EI on the INVITE
    python tools/demo.py --mode transfer  # ... -> REFER with X-EI in the Refer-To URI
    python tools/demo.py --suite bullseye --agi fastagi   # on Asterisk 16, through FastAGI
    python tools/demo.py --transfer-back warm   # ... then the agent warm-transfers to a human here

Builds (or reuses) the lab image like the E2E suite, runs Asterisk (22, or 16) in a container with
SIPp peers and the Synthflow API model on 127.0.0.1, then stops all of them.
"""
import argparse
import json
import secrets
import shutil
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "tests" / "e2e"
sys.path.insert(0, str(E2E))

import lab_sip_log  # noqa: E402
from lab_build import CACHE  # noqa: E402
from lab_peers import Sipp, start_lab  # noqa: E402
from lab_run import CUSTOMER, CUSTOMER_UAS, HUMANS, SYNTHFLOW  # noqa: E402

# Each mode replays an E2E scenario: its SIPp files and the call id they require.
MODES = {
    "transfer": {"context": "e2e-originate-transfer", "call_id": "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00001",
                 "customer": E2E / "originate_transfer/sipp/customer_accepts_refer.xml", "agent": None},
    "dial": {"context": "e2e-dial-mode", "call_id": "3f0c9a52-7d1e-4b8a-9c61-0a11e2e00003",
             "customer": E2E / "dial_mode/sipp/customer_answers.xml",
             "agent": E2E / "dial_mode/sipp/agent_requires_xei.xml"},
}
NAMES = {"127.0.0.1:%d" % CUSTOMER_UAS: "customer (SIPp)", "127.0.0.1:%d" % SYNTHFLOW: "Synthflow (SIPp)",
         "127.0.0.2:32683": "Synthflow 2 (SIPp)", "127.0.0.1:%d" % HUMANS: "human (SIPp)"}
# --transfer-back warm replays tests/e2e/way_back_transfers' warm scenario (docs/way-back.md).
WAY_BACK = E2E / "way_back_transfers" / "sipp"
WARM = {"context": "e2e-way-back", "call_id": "5a0b7c3d-9e1f-4a2b-8c3d-0a11e2e0b001",
        "customer": WAY_BACK / "customer_answers.xml", "agent": WAY_BACK / "agent_refers.xml"}


def synthflow_sipp(run_dir, name, xml, port, ip, calls, **kw):
    """A SIPp on Synthflow's lab address ip (127.0.0.2 is its second signalling address)."""
    peer = Sipp(run_dir, name, xml, port, **kw)
    peer.cmd[peer.cmd.index("-i") + 1] = peer.cmd[peer.cmd.index("-mi") + 1] = ip
    peer.cmd[peer.cmd.index("-m") + 1] = str(calls)
    return peer.start()


def masked_headers(headers, token):
    shown = {}
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            value = "Bearer ****"
        shown[name] = str(value).replace(token, "****")
    return shown


def section(title):
    print("\n=== %s %s" % (title, "=" * max(3, 70 - len(title))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="dial")
    parser.add_argument("--suite", choices=["sid", "bullseye"], default="sid", help="sid: Asterisk 22, bullseye: 16.28")
    parser.add_argument("--agi", choices=["classic", "fastagi"], default="classic", help="how the dialplan reaches the program")
    parser.add_argument("--transfer-back", choices=["warm"], help="dial mode, then the agent hands the caller to a human here")
    args = parser.parse_args(argv)
    if args.transfer_back and args.mode != "dial":
        parser.error("--transfer-back needs --mode dial: in transfer mode the carrier holds the caller's leg")
    mode = WARM if args.transfer_back else MODES[args.mode]
    token = "demo-" + secrets.token_hex(12)
    run_dir = CACHE / "run-demo"
    shutil.rmtree(str(run_dir), ignore_errors=True)
    try:
        asterisk, model = start_lab(run_dir, token, suite=args.suite, agi=args.agi)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        print("demo: the lab could not start: %s" % exc, file=sys.stderr)
        return 2
    peers = []
    try:
        model.script({"kind": "ok", "call_id": mode["call_id"]})
        mark = asterisk.mark()
        if args.transfer_back:
            peers.append(Sipp(run_dir, "human", WAY_BACK / "human_answers.xml", HUMANS).start())
            peers.append(synthflow_sipp(run_dir, "agent", mode["agent"], SYNTHFLOW, "127.0.0.1", 2,
                                        keys={"refer_to": "0875704225f3a9c1e7"}))
        elif mode["agent"]:
            peers.append(Sipp(run_dir, "agent", mode["agent"], SYNTHFLOW).start())
        customer = Sipp(run_dir, "customer", mode["customer"], CUSTOMER_UAS).start()
        peers.append(customer)
        print("placing the call: call file -> PJSIP/%s@customer, context %s" % (CUSTOMER, mode["context"]))
        asterisk.originate("PJSIP/%s@customer" % CUSTOMER, mode["context"],
                           {"CUSTOMER_NUMBER": CUSTOMER, "customer_name": "Jane Doe"})
        if args.transfer_back:
            asterisk.wait_for(r"PJSIP/synthflow-\S+ answered PJSIP/customer-", mark)
            print("the agent answered; Synthflow now INVITEs the human, then REFERs the caller")
            peers.append(synthflow_sipp(run_dir, "synthflow-2", WAY_BACK / "synthflow_invites_human.xml", 32683,
                                        "127.0.0.2", 1, remote="127.0.0.1:15060", service="+14155550199"))
        verdicts = [(peer.name, peer.wait(40)) for peer in peers]
        result = asterisk.result(mark)
        show(model, token, result, asterisk.since(mark))
        failed = [(name, code) for name, code in verdicts if code != 0]
        for name, code in failed:
            print("SIPp %s failed (exit %s); see %s" % (name, code, run_dir / name))
        return 1 if failed or result["status"] != "SUCCESS" else 0
    finally:
        for peer in peers:
            peer.stop()
        asterisk.stop()
        model.stop()


def show(model, token, result, log_text):
    for request in model.requests():
        section("API request")
        print("%s %s" % (request.get("method"), request.get("path")))
        print(json.dumps(masked_headers(request.get("headers"), token), indent=2))
        body = request.get("body") or {}
        print(json.dumps(body, indent=2, ensure_ascii=False))
        section("API response (the model's scripted behaviour %s)" % json.dumps(request.get("behaviour")))
        # What tests/support/synthflow_model.py answers for "ok": it echoes the request.
        print("200 OK")
        print(json.dumps({"call_status": "registered", "synthflow_call_id": result["call_id"],
                          "direction": "inbound", "model_id": body.get("model_id"),
                          "workspace_id": body.get("workspace_id"),
                          "custom_variables": body.get("custom_variables")}, indent=2, ensure_ascii=False))
    section("dialplan status")
    print(" ".join("SYNTHFLOW_%s=%s" % (k.upper(), v) for k, v in result.items()))
    section("SIP ladder (as Asterisk sent and received it)")
    messages = lab_sip_log.parse(log_text)
    print(lab_sip_log.ladder(messages, NAMES, width=22))
    for message in messages:
        for header in ("Refer-To", "X-EI", "X-Summary"):
            value = message.header(header)
            if value:
                print("  %s %s -> %s: %s" % (message.label, message.direction, header, value))


if __name__ == "__main__":
    sys.exit(main())
