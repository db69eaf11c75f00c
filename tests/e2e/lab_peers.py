"""The lab's peers on the host loopback: SIPp instances and the Synthflow API model.

Each peer is a child process that we stop by its own PID.  SIPp runs with a global
timeout, so no scenario can hang the suite, and it keeps a message trace per instance
(used for diagnosis and for the demo's ladder diagram).
"""
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lab_build import REPO
from lab_run import port_in_use, wait_for_port

MODEL_SCRIPT = REPO / "tests" / "support" / "synthflow_model.py"


def stop_process(proc, grace=3.0):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Sipp:
    """One SIPp instance.  role "uas" listens on port; role "uac" calls remote from port."""

    def __init__(self, run_dir, name, scenario, port, remote=None, transport="udp",
                 service=None, timeout=30, keys=None, calls=1, options=()):
        """calls > 1 (a load): no message trace, which would cost SIPp more than the calls;
        options: more SIPp flags (rate, hold, receive timeout)."""
        self.name = name
        self.dir = Path(run_dir) / "sipp" / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.transport = transport
        self.proc = None
        self._out = None
        cmd = ["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port),
               "-t", "t1" if transport == "tcp" else "u1",
               # media port per instance, so parallel SIPps never collide
               "-mi", "127.0.0.1", "-mp", str(port + 10000),
               "-m", str(calls), "-timeout", "%ds" % timeout, "-timeout_error",
               "-max_recv_loops", str(max(100, calls * 10)),
               "-nostdin", "-trace_err", "-error_file", str(self.dir / "errors.log")]
        if calls == 1:
            cmd += ["-trace_msg", "-message_file", str(self.dir / "messages.log")]
        cmd += ["-trace_logs", "-log_file", str(self.dir / "actions.log")] + list(options)
        if service:
            cmd += ["-s", service]
        for key, value in (keys or {}).items():
            cmd += ["-key", key, value]
        if remote:
            cmd.append(remote)
        self.cmd = cmd

    def start(self):
        proto = "tcp" if self.transport == "tcp" else "udp"
        if port_in_use(self.port, proto):
            raise RuntimeError("127.0.0.1:%d/%s is already taken (a leftover SIPp?)" % (self.port, proto))
        self._out = open(str(self.dir / "screen.log"), "w")
        self.proc = subprocess.Popen(self.cmd, cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proto, 10, "SIPp %s" % self.name)
        return self

    def wait(self, timeout=40):
        """SIPp's exit code: 0 means every check of its scenario passed."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
            return "killed after %ss" % timeout
        finally:
            if self._out:
                self._out.close()
                self._out = None

    def stop(self):
        stop_process(self.proc)
        if self._out:
            self._out.close()
            self._out = None

    def text(self, what):
        path = self.dir / what
        return path.read_text(errors="replace") if path.exists() else ""

    def report(self):
        """Why SIPp failed, in its own words."""
        return "SIPp %s (%s):\n--- errors\n%s\n--- screen\n%s\n--- last messages\n%s" % (
            self.name, " ".join(self.cmd), self.text("errors.log")[-3000:],
            self.text("screen.log")[-1500:], self.text("messages.log")[-3000:])

    def assert_passed(self, timeout=40):
        code = self.wait(timeout)
        assert code == 0, "exit %s\n%s" % (code, self.report())


class ApiModel:
    """tests/support/synthflow_model.py as a process (its CLI), controlled over HTTP."""

    def __init__(self, run_dir, token):
        self.token = token
        self.dir = Path(run_dir) / "api-model"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc = None
        self._out = None

    @property
    def base_url(self):
        return "http://127.0.0.1:%d/v2" % self.port

    def start(self):
        if not MODEL_SCRIPT.exists():
            raise RuntimeError("%s is missing (the API model)" % MODEL_SCRIPT)
        port_file = self.dir / "port"
        if port_file.exists():
            port_file.unlink()
        self._out = open(str(self.dir / "model.log"), "a")
        # A restart reuses the port: Asterisk's environment already names it.
        self.proc = subprocess.Popen(
            [sys.executable, str(MODEL_SCRIPT), "--listen", "127.0.0.1:%d" % self.port,
             "--token", self.token, "--port-file", str(port_file)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("API model did not start: %s" % (self.dir / "model.log").read_text()[-2000:])
            time.sleep(0.05)
        self.port = int(port_file.read_text().strip())
        wait_for_port(self.port, "tcp", 10, "API model")
        return self

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        if self._out:
            self._out.close()
            self._out = None

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
        return json.loads(body.decode()) if body.strip() else None

    def script(self, *behaviours):
        self._call("POST", "/_model/script", list(behaviours))

    def reset(self):
        self._call("POST", "/_model/reset", {})

    def requests(self):
        return self._call("GET", "/_model/requests")


def start_lab(run_dir, token, suite="sid", agi="classic"):
    """Image (cached), API model, Asterisk container: returns (asterisk, model), both running.

    tests/e2e is mounted so that each scenario's configs/extensions.conf is loaded.  With
    agi="fastagi" the sample's AGI() calls go to the FastAGI server in the container.
    """
    from lab_build import ensure_lab_image, say
    from lab_run import AsteriskLab

    from lab_lock import LAB_LOCK

    with LAB_LOCK:  # no other run retags the image in between; asterisk.start() holds it on
        engine, image = ensure_lab_image(suite)
        model = ApiModel(run_dir, token).start()
        asterisk = AsteriskLab(engine, image, run_dir)
        say("starting Asterisk in the lab container")
        try:
            asterisk.start({"SYNTHFLOW_API_URL": model.base_url, "SYNTHFLOW_API_TOKEN": token},
                           mounts=[(Path(__file__).resolve().parent, "/etc/asterisk/e2e")])
            if agi == "fastagi":
                asterisk.route_agi_to_fastagi()
        except BaseException:
            asterisk.stop()
            model.stop()
            raise
    return asterisk, model
