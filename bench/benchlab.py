"""The E2E lab, set up for measuring: the bench dialplans, quiet logs, curl modules, FastAGI.

Built on tests/e2e's harness (image, container, lock); nothing here changes it.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))
from lab_run import QUIET_LOGGING, AsteriskLab  # noqa: E402

from sampler import find_in_namespace  # noqa: E402

CA_INSIDE = "/opt/bench-tls"
# func_curl + func_json for the dialplan peer, func_env for the URL and token it reads;
# the lab's modules.conf (autoload=no) does not list them.
PEER_MODULES = ("res_curl.so", "func_curl.so", "func_json.so", "func_env.so")
VENV_PYTHON = "/opt/synthflow-agi/bin/python"
REFERENCE_IMPORTS = "import requests, phonenumbers, asterisk.agi"
TIMER = r"""
import json, subprocess, sys, time
runs, code = int(sys.argv[1]), sys.argv[2]
cmd = [sys.executable, "-c", code]
times = []
for i in range(runs + 2):  # two unmeasured runs warm the page cache
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    times.append((time.perf_counter() - started) * 1000.0)
print(json.dumps(times[2:]))
"""


class BenchLab:
    """One container for one phase: Asterisk with the given API model, plus FastAGI."""

    def __init__(self, engine, image, run_dir, api_url, token, ca_dir, env=None):
        """env: more variables for Asterisk's environment (the AGI programs inherit it)."""
        self.asterisk = AsteriskLab(engine, image, run_dir)
        self.env = {"SYNTHFLOW_API_URL": api_url, "SYNTHFLOW_API_TOKEN": token,
                    "REQUESTS_CA_BUNDLE": CA_INSIDE + "/ca.pem", "BENCH_CA_FILE": CA_INSIDE + "/ca.pem"}
        self.env.update(env or {})
        self.mounts = [(str(HERE / "lab"), "/etc/asterisk/e2e"), (str(ca_dir), CA_INSIDE)]

    def start(self, fastagi_options=("--max-connections", "1000")):
        self.asterisk.start(self.env, mounts=self.mounts)
        for command in QUIET_LOGGING:
            self.asterisk.cli(command)
        for module in PEER_MODULES:
            out = self.asterisk.cli("module load %s" % module)
            if "Loaded" not in out and "already" not in out.lower():
                raise RuntimeError("could not load %s: %s" % (module, out.strip()))
        missing = [ctx for ctx in ("bench-floor", "bench-curl", "bench-agi", "bench-fastagi", "bench-predial")
                   if "'%s'" % ctx not in self.asterisk.cli("dialplan show %s" % ctx)]
        if missing:
            raise RuntimeError("bench dialplan not loaded (contexts %s): is bench/lab mounted?" % missing)
        self.asterisk.start_fastagi(*fastagi_options)
        return self

    def stop(self):
        try:
            if self.asterisk.cid:
                self.asterisk.stop_fastagi()
        finally:
            self.asterisk.stop()

    def asterisk_pid(self):
        out = subprocess.run([self.asterisk.engine.cli, "inspect", "--format", "{{.State.Pid}}", self.asterisk.cid],
                             stdout=subprocess.PIPE, universal_newlines=True, check=True)
        return int(out.stdout.strip())

    def fastagi_pid(self):
        pids = find_in_namespace(self.asterisk_pid(), "synthflow-agi", "fastagi")
        if len(pids) != 1:
            raise RuntimeError("expected one FastAGI server in the container, found %s" % pids)
        return pids[0]

    def time_python(self, code, runs):
        """Wall ms of ``venv-python -c code`` in the container, ``runs`` times (after 2 warm-ups)."""
        out = self.asterisk.exec_([VENV_PYTHON, "-c", TIMER, str(runs), code]).stdout
        return json.loads(out.strip().splitlines()[-1])

    def fastagi_summary(self):
        """The FastAGI server's last summary line as a dict (it logs one on exit)."""
        lines = re.findall(r"summary (calls=.*)$", self.asterisk.read("fastagi.log"), re.M)
        if not lines:
            return {}
        return dict(item.split("=", 1) for item in lines[-1].split() if "=" in item)

    def statuses(self):
        """Counts of status=... in the FastAGI log's per-call lines."""
        counts = {}
        for status in re.findall(r" status=(\S+) ", self.asterisk.read("fastagi.log")):
            counts[status] = counts.get(status, 0) + 1
        return counts
