"""contrib/synthflow-agi-fastagi.service: systemd accepts it, it is sandboxed, and the server runs sandboxed.

systemd cannot start the unit here (no systemd as PID 1), so the checks are:
``systemd-analyze verify`` and ``systemd-analyze security --offline=true`` (systemd >= 250)
on the unit; its ExecStartPre command run as the unit would run it; and the FastAGI
server serving a call under the restrictions that can be applied without systemd (no
capabilities, no_new_privs, memory never writable and executable, umask 077). The
seccomp filter, namespaces and mount restrictions are left to systemd-analyze.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract._helpers import TOKEN, assert_basics, posts
from tests.support.fastagi_peer import FastAgiPeer, FastAgiServerProcess

pytestmark = pytest.mark.host

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "contrib" / "synthflow-agi-fastagi.service"
INSTALLED_COMMAND = "/opt/synthflow-agi/bin/synthflow-agi"
MAX_EXPOSURE = 2.5
# What the sandbox leaves open on purpose: the server accepts Asterisk's TCP connections,
# reaches Synthflow's API anywhere on the internet, and logs to /dev/log.
DELIBERATELY_OPEN = {
    "PrivateNetwork=", "IPAddressDeny=", "RestrictAddressFamilies=~AF_(INET|INET6)",
    "RestrictAddressFamilies=~AF_UNIX", "RootDirectory=/RootImage=", "DeviceAllow=",
}
CALL_ID = "0b9c7d1e-2f3a-4b5c-9d8e-fedcba987654"
# Before exec: empty capability sets and no_new_privs (setpriv), memory-deny-write-execute
# (prctl PR_SET_MDWE, kept across exec) and the unit's umask.
MDWE_EXEC = (
    "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
    "assert libc.prctl(65, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno()); "
    "os.umask(0o077); os.execvp(sys.argv[1], sys.argv[1:])"
)
SANDBOX = [sys.executable, "-c", MDWE_EXEC, "setpriv", "--no-new-privs", "--bounding-set=-all",
           "--inh-caps=-all"]


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: tools/bootstrap.sh installs the systemd package"
    return subprocess.run([tool, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=60)


def unit_directives(name: str) -> list:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(name + "=")]


def installed_here(command_line: str) -> list:
    """A command line of the unit, with the install prefix replaced by this venv's."""
    argv = shlex.split(command_line)
    assert argv[0] == INSTALLED_COMMAND, argv
    return [str(Path(sys.executable).with_name("synthflow-agi"))] + argv[1:]


def test_systemd_analyze_verify_is_clean(tmp_path):
    """systemd-analyze verify finds nothing to report in the unit once its command exists."""
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(INSTALLED_COMMAND, installed_here(INSTALLED_COMMAND)[0]))
    proc = systemd_analyze("verify", "--man=no", str(unit))
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout


def test_security_exposure_is_at_most_2_5():
    """systemd-analyze security --offline rates the unit at most 2.5, leaving open only the network it needs."""
    text = systemd_analyze("security", "--offline=true", str(UNIT))
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", text.stdout)
    assert score, text.stdout[-2000:]
    assert float(score.group(1)) <= MAX_EXPOSURE, text.stdout
    report = json.loads(systemd_analyze("security", "--offline=true", "--json=short", str(UNIT)).stdout)
    open_items = {item["name"] for item in report if not item["set"] and item["exposure"]}
    assert open_items <= DELIBERATELY_OPEN, sorted(open_items - DELIBERATELY_OPEN)


def test_exec_start_pre_refuses_a_broken_configuration(tmp_path):
    """The unit's ExecStartPre exits non-zero on a broken synthflow.conf, so systemd does not start the server."""
    (pre,) = unit_directives("ExecStartPre")
    broken = tmp_path / "synthflow.conf"
    broken.write_text("[general]\napi_token = %s\nmodel_id = m\nworkspace_id = w\n"
                      "agent_number = +15557654321\nsip_transport = carrier-pigeon\n" % TOKEN)
    proc = subprocess.run(installed_here(pre), env={"SYNTHFLOW_CONFIG": str(broken), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "sip_transport" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr


def test_exec_start_pre_accepts_a_good_configuration_without_showing_the_token(tmp_path):
    """The unit's ExecStartPre exits 0 on a good synthflow.conf and prints the token only masked."""
    (pre,) = unit_directives("ExecStartPre")
    good = tmp_path / "synthflow.conf"
    good.write_text("[general]\napi_token = %s\nmodel_id = m\nworkspace_id = w\n"
                    "agent_number = +15557654321\n" % TOKEN)
    proc = subprocess.run(installed_here(pre), env={"SYNTHFLOW_CONFIG": str(good), "PATH": "/usr/bin:/bin"},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout.rstrip().endswith("configuration OK")
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_sandbox_wrapper_denies_writable_executable_memory():
    """A process started through SANDBOX cannot map memory writable and executable, and has no capabilities."""
    probe = ("import mmap; status = open('/proc/self/status').read(); print(status); "
             "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)")
    proc = subprocess.run(SANDBOX + [sys.executable, "-c", probe], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert proc.returncode == 1 and "PermissionError" in proc.stderr, proc.stderr
    assert re.search(r"^NoNewPrivs:\s+1$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^CapBnd:\s+0+$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^CapEff:\s+0+$", proc.stdout, re.M), proc.stdout


def test_fastagi_server_serves_a_call_inside_the_sandbox(env, model):
    """Without capabilities, with no_new_privs and memory-deny-write-execute, the server hands a call off."""
    model.script({"kind": "ok", "call_id": CALL_ID})
    server = FastAgiServerProcess(env, ["--read-timeout", "5", "--grace", "5"])
    server.command = SANDBOX + server.command
    server.start()
    try:
        status = Path("/proc/%d/status" % server.proc.pid).read_text()
        result = FastAgiPeer(server.port).run(timeout=15)
    finally:
        code = server.stop()
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert_basics(result)
    assert result.status == "SUCCESS", result
    assert len(posts(model)) == 1
    assert code == 0, server.log
    assert "Traceback" not in server.log, server.log
