"""Run the lab container: start Asterisk, talk to its CLI, place calls, read its log.

Asterisk's full log and its stderr (where the AGI program's own log lines and any Python
traceback land) are bind-mounted into the run directory, so the tests read them directly.
"""
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

from lab_build import run, say
from lab_lock import LAB_LOCK

OWNER_LABEL = "synthflow.e2e.owner"
# Loopback ports, as docker/asterisk/pjsip.conf knows them.
ASTERISK_SIP_PORT = 15060
CUSTOMER_UAS, CUSTOMER_UAC, CUSTOMER_TCP, SYNTHFLOW, HUMANS = 15070, 15071, 15072, 32681, 15090
# Asterisk 16 labs only (docker/asterisk-suite/bullseye/sip.conf): chan_sip and its customer.
ASTERISK_CHAN_SIP_PORT, CUSTOMER_CHAN_SIP = 15062, 15073
FASTAGI_PORT = 4573  # the synthflow-agi FastAGI server inside the container (host network)
FASTAGI_URI = "agi://127.0.0.1:%d/synthflow" % FASTAGI_PORT
# Log files the container writes into the run directory; every one is checked for hygiene.
LOG_FILES = ("full", "stderr.log", "fastagi.log")
AGENT = "+14155550123"  # agent_number in docker/asterisk/synthflow.conf
CUSTOMER = "+12125550199"
# res_agi's debug trace of the environment it sends: which program a call really ran.
AGI_REQUEST = re.compile(r"AGI Tx >> agi_request: (\S+)")
CLASSIC_AGI = "synthflow.agi"
# Production-like logging: the lab logs every SIP message (pjsip debug) and every AGI
# command (agi debug) and every dialplan step (verbose 3) for diagnosis; under load that
# logging would cost Asterisk more than the calls.
QUIET_LOGGING = ("core set verbose 0", "agi set debug off", "pjsip set logger off")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+", re.M)


LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def local_sockets(proto):
    """(local address as /proc writes it, port, state) of every socket of this host's network, IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/%s" % proto, "/proc/net/%s6" % proto):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port = fields[1].rsplit(":", 1)
            found.append((address, int(port, 16), fields[3]))
    return found


def port_in_use(port, proto="udp"):
    """True when something on this host listens on 127.0.0.1:port (or any address)."""
    return any(p == port and (proto == "udp" or state == LISTEN) for _, p, state in local_sockets(proto))


def wait_for_port(port, proto, timeout, what):
    deadline = time.time() + timeout
    while not port_in_use(port, proto):
        if time.time() > deadline:
            raise RuntimeError("%s did not bind 127.0.0.1:%d/%s within %ss" % (what, port, proto, timeout))
        time.sleep(0.05)


class AsteriskLab:
    def __init__(self, engine, image, run_dir):
        self.engine = engine
        self.image = image
        self.log_dir = Path(run_dir) / "asterisk-log"
        self.cid = None
        self._locked = False

    # ------------------------------------------------------------ life cycle
    def remove_stale(self):
        """Remove lab containers left by harness processes that are gone (killed runs)."""
        ids = run([self.engine.cli, "ps", "-a", "-q", "--filter", "label=%s" % OWNER_LABEL]).split()
        for cid in ids:
            owner = run([self.engine.cli, "inspect", "--format",
                         '{{index .Config.Labels "%s"}}' % OWNER_LABEL, cid]).strip()
            if owner.isdigit() and not Path("/proc/%s" % owner).exists():
                say("removing stale lab container %s (its harness process %s is gone)" % (cid, owner))
                for verb in ("kill", "rm"):  # kill first: rm -f would wait out a stop timeout
                    subprocess.run([self.engine.cli, verb, cid],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, env, mounts=()):
        """mounts: (host path, container path) pairs, mounted read-only."""
        LAB_LOCK.acquire()  # released by stop()
        self._locked = True
        self.remove_stale()
        if port_in_use(ASTERISK_SIP_PORT, "udp"):
            raise RuntimeError("127.0.0.1:%d/udp is taken: another Asterisk lab is running?" % ASTERISK_SIP_PORT)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.iterdir():
            if old.is_dir():
                for inner in old.iterdir():
                    inner.unlink()
            else:
                old.unlink()
        # cdr_custom writes below the log folder, which the mount replaces.
        (self.log_dir / "cdr-custom").mkdir(exist_ok=True)
        args = self.engine.run_args() + ["-d", "--label", "%s=%d" % (OWNER_LABEL, os.getpid()),
                                         "-v", "%s:/var/log/asterisk" % self.log_dir]
        for host, inside in mounts:
            args += ["-v", "%s:%s:ro" % (host, inside)]
        for key, value in sorted(env.items()):
            args += ["-e", "%s=%s" % (key, value)]
        # stderr into the log folder: the AGI program logs there, and so would a traceback.
        args += [self.image, "sh", "-c", "exec asterisk -f -n 2>>/var/log/asterisk/stderr.log"]
        self.cid = run(args).strip().splitlines()[-1]
        deadline = time.time() + 60
        while True:
            proc = self.exec_(["asterisk", "-rx", "core waitfullybooted"], check=False)
            if proc.returncode == 0 and "fully booted" in proc.stdout:
                break
            if time.time() > deadline or not self.running():
                raise RuntimeError("Asterisk did not boot in the lab container:\n%s\n%s" % (
                    proc.stdout[-2000:], self.read("full")[-3000:]))
            time.sleep(0.3)
        wait_for_port(ASTERISK_SIP_PORT, "udp", 10, "Asterisk")
        self.cli("agi set debug on")  # the AGI command trace, for diagnosis in the full log

    def start_fastagi(self, *options):
        """Run ``synthflow-agi fastagi`` in the container, next to Asterisk, until it stops.

        It sees the container's environment (API URL and token) and /etc/asterisk/synthflow.conf,
        exactly as the classic AGI does; its log lines go to fastagi.log in the log folder.
        """
        if port_in_use(FASTAGI_PORT, "tcp"):
            raise RuntimeError("127.0.0.1:%d/tcp is taken: a FastAGI server is already running?" % FASTAGI_PORT)
        command = ["/opt/synthflow-agi/bin/synthflow-agi", "fastagi", "--listen", "127.0.0.1:%d" % FASTAGI_PORT]
        command += list(options)
        self.exec_(["sh", "-c", 'exec "$@" >>/var/log/asterisk/fastagi.log 2>&1 </dev/null &', "fastagi"] + command)
        wait_for_port(FASTAGI_PORT, "tcp", 15, "the FastAGI server")

    def stop_fastagi(self, timeout=20):
        """SIGTERM the FastAGI server (it drains calls in flight) and wait for it to exit."""
        self.exec_(["sh", "-c", "pkill -TERM -f '[s]ynthflow-agi fastagi' || true"])
        deadline = time.time() + timeout
        while port_in_use(FASTAGI_PORT, "tcp") or self.exec_(
                ["pgrep", "-f", "[s]ynthflow-agi fastagi"], check=False).returncode == 0:
            if time.time() > deadline:
                raise RuntimeError("the FastAGI server did not exit within %ss of SIGTERM" % timeout)
            time.sleep(0.1)

    def route_agi_to_fastagi(self):
        """Start the FastAGI server and point the sample's ${SYNTHFLOW_AGI} at it."""
        self.start_fastagi()
        self.cli("dialplan set global SYNTHFLOW_AGI %s" % FASTAGI_URI)

    def running(self):
        out = subprocess.run([self.engine.cli, "inspect", "--format", "{{.State.Running}}", self.cid],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True)
        return out.stdout.strip() == "true"

    def stop(self):
        if self.cid:
            subprocess.run([self.engine.cli, "stop", "-t", "3", self.cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([self.engine.cli, "rm", "-f", self.cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.cid = None
        if self._locked:
            self._locked = False
            LAB_LOCK.release()

    # ------------------------------------------------------------ commands
    def exec_(self, argv, stdin_text=None, check=True):
        proc = subprocess.run([self.engine.cli, "exec", "-i", self.cid] + argv, input=stdin_text,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if check and proc.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(argv), proc.stdout[-2000:]))
        return proc

    def cli(self, command):
        return self.exec_(["asterisk", "-rx", command]).stdout

    def originate(self, channel, context, variables, exten="s"):
        """Place a call the way a dialer does: a call file, moved into the spool atomically."""
        lines = ["Channel: %s" % channel, "Context: %s" % context, "Extension: %s" % exten,
                 "Priority: 1", "MaxRetries: 0", "WaitTime: 15"]
        for name, value in variables.items():
            if "\n" in value or "\r" in value:
                raise ValueError("a call file value cannot hold a line break")
            # In call files ';' starts a comment unless escaped; nothing else is special.
            lines.append("Setvar: %s=%s" % (name, value.replace(";", "\\;")))
        name = "lab-%s.call" % uuid.uuid4().hex[:12]
        script = ('cat > /var/spool/asterisk/tmp/{0} && mv /var/spool/asterisk/tmp/{0} '
                  '/var/spool/asterisk/outgoing/{0}').format(name)
        self.exec_(["sh", "-c", script], stdin_text="\n".join(lines) + "\n")

    # ------------------------------------------------------------ evidence
    def read(self, name="full"):
        try:
            return (self.log_dir / name).read_text(errors="replace")
        except OSError:
            return ""

    def mark(self):
        """Log positions; pass to since()/wait_for() to look only at what came after."""
        return {name: len(self.read(name)) for name in LOG_FILES}

    def since(self, mark, name="full"):
        return self.read(name)[mark.get(name, 0):]

    def wait_for(self, pattern, mark, timeout=20):
        regex = re.compile(pattern, re.M)
        deadline = time.time() + timeout
        while True:
            found = regex.search(self.since(mark))
            if found:
                return found
            if time.time() > deadline:
                raise AssertionError("no log line matching %r within %ss; log tail:\n%s" % (
                    pattern, timeout, self.since(mark)[-4000:]))
            time.sleep(0.1)

    def result(self, mark, timeout=20):
        """The dialplan's own verdict: the SYNTHFLOW_RESULT line of extensions.conf.sample."""
        # the line Verbose() prints, not the "Executing [...] Verbose(...)" trace before it
        found = self.wait_for(r"app_verbose\.c: SYNTHFLOW_RESULT status=(\S*) call_id=(\S*) target=(\S*) error=(.*)$",
                              mark, timeout)
        return {"status": found.group(1), "call_id": found.group(2), "target": found.group(3),
                "error": found.group(4).strip()}

    def hygiene_problems(self, mark, secrets):
        """Python tracebacks or secrets in Asterisk's log or stderr since mark."""
        problems = []
        for name in LOG_FILES:
            problems += text_problems(self.since(mark, name), name, secrets)
        return problems

    def agi_route_problems(self, mark, agi):
        """Calls since mark that ran the program another way than this lab's (classic/fastagi)."""
        wanted = FASTAGI_URI if agi == "fastagi" else CLASSIC_AGI
        wrong = sorted(set(AGI_REQUEST.findall(self.since(mark))) - {wanted})
        return ["the %s lab ran the program as %s" % (agi, ", ".join(wrong))] if wrong else []


def text_problems(text, where, secrets):
    """
    >>> text_problems('ok\\nTraceback (most recent call last):\\n  File "x.py", line 1', "log", [])
    ['Python traceback in log: Traceback (most recent call last):\\n  File "x.py", line 1']
    >>> text_problems("Authorization: Bearer tok-123", "log", ["tok-123"])
    ['secret tok-... appears in log']
    >>> text_problems("all good", "log", ["tok-123", ""])
    []
    """
    problems = []
    found = TRACEBACK.search(text)
    if found:
        problems.append("Python traceback in %s: %s" % (where, text[found.start():found.start() + 3000]))
    for secret in secrets:
        if secret and secret in text:
            problems.append("secret %s... appears in %s" % (secret[:4], where))
    return problems
