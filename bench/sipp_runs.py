"""SIPp runs for the benchmark: the customer (load generator) and the agent (the stand-in).

Unlike the E2E suite's one-call SIPps, these place many calls (``-m``, ``-r``, ``-l``);
every run is still bounded by ``-m`` and a global ``-timeout``, each receive by
``-recv_timeout``, and each process is stopped by its own PID.  Message traces are off
(they would cost SIPp more than the calls); the measure comes from ``<log>`` lines
written by the scenarios' ``gettimeofday`` actions, and the counts from ``-trace_stat``.
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))  # the lab harness
from lab_peers import stop_process  # noqa: E402
from lab_run import ASTERISK_SIP_PORT, CUSTOMER_UAC, SYNTHFLOW, port_in_use, wait_for_port  # noqa: E402

SCENARIOS = HERE / "sipp"


class SippRun:
    """One SIPp process; ``remote`` makes it a UAC."""

    def __init__(self, folder, name, scenario, port, calls, timeout, remote=None, rate=None,
                 limit=None, hold_ms=0, recv_timeout=40, injection=None):
        self.dir = Path(folder) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = port
        self.calls = calls
        self.proc = None
        self._screen = None
        cmd = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
               "-mi", "127.0.0.1", "-mp", str(port + 10000),
               "-m", str(calls), "-timeout", "%ds" % timeout, "-timeout_error",
               "-recv_timeout", str(int(recv_timeout * 1000)), "-d", str(int(hold_ms)),
               "-nostdin", "-trace_err", "-error_file", str(self.dir / "errors.log"),
               "-trace_logs", "-log_file", str(self.dir / "actions.log"),
               "-trace_stat", "-stf", str(self.dir / "stat.csv"), "-fd", "5"]
        if rate is not None:
            cmd += ["-r", "%g" % rate, "-rp", "1000"]
        if limit is not None:
            cmd += ["-l", str(limit)]
        if injection is not None:
            cmd += ["-inf", str(injection)]
        if remote:
            cmd.append(remote)
        self.cmd = cmd

    def start(self):
        if port_in_use(self.port, "udp"):
            raise RuntimeError("127.0.0.1:%d/udp is taken (a leftover SIPp?)" % self.port)
        self._screen = open(str(self.dir / "screen.log"), "w")
        self.proc = subprocess.Popen(self.cmd, cwd=str(self.dir), stdin=subprocess.DEVNULL,
                                     stdout=self._screen, stderr=subprocess.STDOUT)
        wait_for_port(self.port, "udp", 10, "SIPp %s" % self.name)
        return self

    def wait(self, timeout):
        """SIPp's exit code (0: every call passed its scenario), or None when it had to be stopped."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
            return None
        finally:
            self.close()

    def stop(self):
        stop_process(self.proc)
        self.close()

    def close(self):
        if self._screen:
            self._screen.close()
            self._screen = None

    def text(self, what="actions.log"):
        path = self.dir / what
        return path.read_text(errors="replace") if path.exists() else ""

    def counts(self):
        """SIPp's own cumulative counters from the last -trace_stat line."""
        lines = [line for line in self.text("stat.csv").splitlines() if line.strip()]
        if len(lines) < 2:
            return {}
        header, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(header, last))
        keys = {"SuccessfulCall(C)": "successful", "FailedCall(C)": "failed", "TotalCallCreated": "created"}
        return {short: int(row[key]) for key, short in keys.items() if row.get(key, "").isdigit()}


def customer(folder, name, calls, rate, limit, timeout, injection, recv_timeout=40):
    return SippRun(folder, name, "customer.xml", CUSTOMER_UAC, calls, timeout, rate=rate, limit=limit,
                   injection=injection, recv_timeout=recv_timeout,
                   remote="127.0.0.1:%d" % ASTERISK_SIP_PORT)


def agent(folder, name, calls, timeout, hold_ms=0, recv_timeout=40):
    return SippRun(folder, name, "agent.xml", SYNTHFLOW, calls, timeout, hold_ms=hold_ms, recv_timeout=recv_timeout)


def write_injection(path, variants):
    """SIPp injection file: one variant (the Request-URI user) per call, in this order."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("SEQUENTIAL\n" + "".join("%s;\n" % v for v in variants))
    return path
