"""A real SIP stack for the E2E lab: pjsua2 (PyPI pjsua2-python) as a REFER-following party.

Run as a script on the host (the lab uses host networking, so it is on the same loopback
as Asterisk).  It answers every incoming call, accepts a REFER and follows it the way
pjsua does (its own INVITE to the Refer-To target, URI headers included), and writes one
JSON line per event to --events.  It exits when it has followed a REFER and no call is
left (the REFERred call and the one it placed have both ended), or at --seconds.

    python lab_pjsua.py --listen 127.0.0.1:15075 --events events.jsonl --log pjsua.log

As a module, PjsuaPeer starts that script as a child process and stops it by its PID.
"""
import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

PJSUA_USER_AGENT = "lab-pjsua2"  # the agent's SIPp checks this: the INVITE came from pjsua2


class PjsuaPeer:
    """This script as a child process, with its event log."""

    def __init__(self, run_dir, name, port, seconds=30):
        self.dir = Path(run_dir) / "pjsua" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.events_file = self.dir / "events.jsonl"
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "--listen", "127.0.0.1:%d" % port,
                    "--events", str(self.events_file), "--log", str(self.dir / "pjsua.log"),
                    "--seconds", str(seconds)]
        self.proc = None
        self._out = None

    def start(self):
        from lab_run import port_in_use, wait_for_port

        probe = subprocess.run([sys.executable, "-c", "import pjsua2"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True)
        if probe.returncode != 0:
            raise RuntimeError("pjsua2 does not import on %s (PyPI pjsua2-python, in the test extra, has "
                               "wheels for CPython 3.9-3.12): %s" % (sys.executable, probe.stdout[-500:]))
        if port_in_use(self.port, "udp"):
            raise RuntimeError("127.0.0.1:%d/udp is already taken (a leftover pjsua?)" % self.port)
        for old in (self.events_file, self.dir / "pjsua.log"):
            if old.exists():
                old.unlink()
        self._out = open(str(self.dir / "stderr.log"), "w")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, "udp", 10, "pjsua2")
        return self

    def events(self):
        if not self.events_file.exists():
            return []
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line.strip()]

    def wait(self, timeout=40):
        """The script's exit code (0: it followed a REFER and every call has ended)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return "killed after %ss" % timeout
        finally:
            self._close()

    def stop(self):
        from lab_peers import stop_process

        stop_process(self.proc)
        self._close()

    def _close(self):
        if self._out:
            self._out.close()
            self._out = None

    def report(self):
        def tail(name, size):
            path = self.dir / name
            return path.read_text(errors="replace")[-size:] if path.exists() else ""
        return "pjsua2 peer:\n--- events\n%s\n--- stderr\n%s\n--- pjsua log\n%s" % (
            tail("events.jsonl", 3000), tail("stderr.log", 2000), tail("pjsua.log", 6000))


def serve(listen, events_path, log_path, seconds):
    """The pjsua2 event loop, on the main thread only (no pjsip worker threads call Python)."""
    import pjsua2 as pj

    host, port = listen.rsplit(":", 1)
    events = open(events_path, "a")

    def emit(event, **fields):
        fields["event"] = event
        events.write(json.dumps(fields, sort_keys=True) + "\n")
        events.flush()

    state = {"followed": False, "stop": False}
    calls = []

    class Call(pj.Call):
        def onCallState(self, prm):
            info = self.getInfo()
            emit("call_state", call=info.callIdString, state=info.stateText, code=info.lastStatusCode,
                 remote=info.remoteUri)

        def onCallTransferRequest(self, prm):
            emit("transfer_request", target=prm.dstUri)
            follower = Call(account)  # the call pjsua makes to the Refer-To target
            calls.append(follower)
            prm.newCall = follower  # prm.statusCode stays 202: follow the REFER
            state["followed"] = True

    class Account(pj.Account):
        def onIncomingCall(self, prm):
            call = Call(self, prm.callId)
            calls.append(call)
            answer = pj.CallOpParam()
            answer.statusCode = 200
            call.answer(answer)
            emit("answered", call=call.getInfo().callIdString)

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.userAgent = PJSUA_USER_AGENT
    config.uaConfig.threadCnt = 0
    config.uaConfig.mainThreadOnly = True
    config.medConfig.threadCnt = 0
    config.medConfig.noVad = True
    config.logConfig.level = 5  # with msgLogging: every SIP message, for diagnosis
    config.logConfig.consoleLevel = 0
    config.logConfig.msgLogging = True
    config.logConfig.filename = log_path
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port = int(port)
    transport.boundAddress = host
    transport.publicAddress = host
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()  # no sound card: a null port clocks the media

    account_config = pj.AccountConfig()
    account_config.idUri = "sip:lab-pjsua2@%s:%s" % (host, port)
    account_config.mediaConfig.transportConfig.boundAddress = host
    account_config.mediaConfig.transportConfig.port = int(port) + 10000
    account_config.mediaConfig.transportConfig.portRange = 20
    account = Account()
    account.create(account_config)
    emit("ready", listen=listen)

    def on_term(signum, frame):
        state["stop"] = True
    signal.signal(signal.SIGTERM, on_term)

    deadline = time.monotonic() + seconds
    while not state["stop"] and time.monotonic() < deadline:
        endpoint.libHandleEvents(20)
        if state["followed"] and all(not c.isActive() for c in calls):
            break
    outcome = "followed" if state["followed"] else "deadline"
    emit("exit", outcome=outcome)
    events.close()
    endpoint.hangupAllCalls()
    for _ in range(10):
        endpoint.libHandleEvents(20)
    calls.clear()
    account.shutdown()
    endpoint.libDestroy()
    return 0 if outcome == "followed" else 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="127.0.0.1:PORT (UDP)")
    parser.add_argument("--events", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--seconds", type=float, default=30.0, help="hard bound on the run")
    args = parser.parse_args()
    if not args.listen.startswith("127."):
        parser.error("the lab peer listens on loopback only")
    return serve(args.listen, args.events, args.log, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
