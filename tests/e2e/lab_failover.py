"""Scale-out and failover with real components (tests/e2e/failover, bench/failover.py).

Two FastAGI servers run as containers of the production image (docker/fastagi.Dockerfile),
reached by the lab's Asterisk 22 through DNS SRV (``hagi://``, dnsmasq on 127.0.53.1) or
through HAProxy (127.0.0.1:4600).  SIPp places a bounded load of calls; one server is
killed (SIGKILL) or drained (SIGTERM) mid-run and later started again.  Every call is then
counted by where it ended: the agent, the humans (the sample's fallback queue), or neither.
"""
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from lab_peers import Sipp, stop_process
from lab_run import (ASTERISK_SIP_PORT, CUSTOMER_UAC, HUMANS, LISTEN, SYNTHFLOW, local_sockets, port_in_use,
                     wait_for_port)

SCENARIO = Path(__file__).resolve().parent / "failover"
DNS_ADDRESS = "127.0.53.1"  # configs/dnsmasq.conf; the lab container's resolv.conf names it
HAPROXY_PORT = 4600  # configs/haproxy.cfg
# (name, FastAGI port, metrics port), as configs/dnsmasq.conf and configs/haproxy.cfg list them
SERVERS = (("agi-a", 4601, 9601), ("agi-b", 4602, 9602))
EXTENSIONS = {"hagi": "failover-hagi", "haproxy": "failover-haproxy"}  # configs/extensions.conf
LINE = {
    "ack": re.compile(r"^ACK\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s*$", re.M),
    "agent": re.compile(r"^XEI-OK\s+(\S+)\s", re.M),
    "agent_invite": re.compile(r"^INVITE\s+(\S+)\s+([0-9.]+)\s+([0-9.]+)\s", re.M),
    "humans": re.compile(r"^HUMANS\s+(\S+)\s", re.M),
}


def resolv_conf(folder):
    """The lab container's /etc/resolv.conf: only the lab's DNS server, one quick try."""
    path = Path(folder) / "resolv.conf"
    path.write_text("nameserver %s\noptions timeout:1 attempts:1\n" % DNS_ADDRESS)
    return path


def bound(address, port, proto):
    """Whether a socket of this host is bound to exactly address:port (IPv4), listening if TCP.

    >>> s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); port = s.getsockname()[1]
    >>> bound("127.0.0.1", port, "tcp"), bound("127.0.0.2", port, "tcp"), bound("127.0.0.1", port, "udp")
    (True, False, False)
    >>> s.close()
    """
    wanted = "%08X" % int.from_bytes(socket.inet_aton(address), "little")
    return any(a == wanted and p == port and (proto == "udp" or state == LISTEN)
               for a, p, state in local_sockets(proto))


class Daemon:
    """dnsmasq or HAProxy on the host, in the foreground, logging to a file; stopped by its PID."""

    def __init__(self, folder, name, argv, address, port, proto):
        self.log = Path(folder) / ("%s.log" % name)
        self.name, self.argv, self.address, self.port, self.proto = name, argv, address, port, proto
        self.proc = None

    def start(self):
        # Only this exact address matters: a resolver of the host's own on 127.0.0.53:53 is fine.
        if bound(self.address, self.port, self.proto):
            raise RuntimeError("%s:%d/%s is taken before %s starts" % (self.address, self.port, self.proto, self.name))
        with open(str(self.log), "w") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not bound(self.address, self.port, self.proto):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("%s did not bind %s:%d/%s:\n%s" % (self.name, self.address, self.port,
                                                                       self.proto, self.text()[-2000:]))
            time.sleep(0.05)
        return self

    def stop(self):
        stop_process(self.proc)

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def dnsmasq(folder):
    return Daemon(folder, "dnsmasq", ["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--pid-file=",
                                      "--conf-file=%s" % (SCENARIO / "configs" / "dnsmasq.conf")],
                  DNS_ADDRESS, 53, "udp")


def haproxy(folder):
    return Daemon(folder, "haproxy", ["haproxy", "-db", "-f", str(SCENARIO / "configs" / "haproxy.cfg")],
                  "127.0.0.1", HAPROXY_PORT, "tcp")


class Server:
    """One FastAGI server: a container of the production image on a loopback port."""

    def __init__(self, engine, image, name, port, metrics_port, env, token_file):
        self.engine, self.image, self.name = engine, image, name
        self.port, self.metrics_port = port, metrics_port
        self.env, self.token_file = env, token_file
        self.container = None

    def start(self):
        from image_lab import Container  # tests/e2e/fastagi_image, on sys.path via the conftest

        options = ["--read-only", "--cap-drop=ALL", "--name", "failover-%s" % self.name,
                   "-v", "%s:/run/secrets/synthflow-token:ro" % self.token_file]
        for key, value in sorted(self.env.items()):
            options += ["-e", "%s=%s" % (key, value)]
        command = ["fastagi", "--listen", "127.0.0.1:%d" % self.port, "--metrics-listen",
                   "127.0.0.1:%d" % self.metrics_port, "--grace", "30", "--max-connections", "500"]
        subprocess.run([self.engine.cli, "rm", "-f", "-t", "0", "failover-%s" % self.name],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.container = Container(self.engine, self.image, options, command)
        wait_for_port(self.port, "tcp", 20, "FastAGI server %s" % self.name)
        return self

    def signal(self, name):
        """Send SIGKILL or SIGTERM to the server (the container's PID 1); returns at once."""
        subprocess.run([self.engine.cli, "kill", "--signal", name, self.container.cid], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def running(self):
        return self.container.inspect("{{.State.Running}}") == "true"

    def wait_exited(self, timeout):
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise RuntimeError("server %s still runs %ss after its signal" % (self.name, timeout))
            time.sleep(0.1)
        return int(self.container.inspect("{{.State.ExitCode}}"))

    def restart(self):
        """Start the same container again (after it died or drained) and wait for its port."""
        subprocess.run([self.engine.cli, "start", self.container.cid], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, "tcp", 20, "FastAGI server %s" % self.name)

    def metric(self, name):
        """One unlabelled sample from the server's /metrics."""
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=2) as reply:  # loopback only
            text = reply.read().decode()
        found = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(found.group(1)) if found else None

    def logs(self):
        return self.container.logs() if self.container else ""

    def remove(self):
        if self.container:
            self.container.remove()


def load_sipp(folder, name, xml, port, calls, timeout, remote=None, rate=None, hold_ms=0, service=None):
    """A SIPp of this scenario placing or taking ``calls`` calls, bounded by -m and a global -timeout."""
    options = ["-d", str(int(hold_ms)), "-recv_timeout", str(int(timeout * 1000))]
    if rate:
        options += ["-r", "%g" % rate, "-rp", "1000", "-l", str(calls)]
    return Sipp(folder, name, SCENARIO / "sipp" / xml, port, remote=remote, service=service, timeout=timeout,
                calls=calls, options=options)


def counts(customer_log, agent_log, humans_log, calls):
    """Where each of ``calls`` customer calls ended, by its Call-ID.

    >>> c = counts("ACK a 10 0\\nACK b 11 0\\nACK c 12 0\\n", "XEI-OK  a x\\n", "HUMANS  b 1 2 X-EI:\\n", 4)
    >>> sorted((k, v) for k, v in c.items() if k != "calls")
    [('agent', 1), ('agent_and_humans', 0), ('answered', 3), ('humans', 1), ('neither', 2)]
    """
    acks = {m.group(1) for m in LINE["ack"].finditer(customer_log)}
    agent = {m.group(1) for m in LINE["agent"].finditer(agent_log)}
    humans = {m.group(1) for m in LINE["humans"].finditer(humans_log)}
    both = agent & humans
    return {"answered": len(acks), "agent": len(agent - humans), "humans": len(humans - agent),
            "agent_and_humans": len(both), "neither": calls - len(agent | humans),
            "calls": {"agent": agent - humans, "humans": humans - agent, "acked": acks}}


def ack_times(customer_log):
    """{Call-ID: the time its ACK left the customer}, in seconds since the epoch.

    >>> ack_times("ACK a 1700000000.000000 250000.000000\\n")
    {'a': 1700000000.25}
    """
    return {m.group(1): float(m.group(2)) + float(m.group(3)) / 1e6 for m in LINE["ack"].finditer(customer_log)}


def handoff_ms(customer_log, agent_log):
    """{Call-ID: ms from the customer's ACK to the agent's INVITE}: the hand-off as the caller lives it.

    >>> handoff_ms("ACK a 10 0\\n", "INVITE  a 10 512500 X-EI: S.x;\\n")
    {'a': 512.5}
    """
    acked = ack_times(customer_log)
    return {m.group(1): round((float(m.group(2)) + float(m.group(3)) / 1e6 - acked[m.group(1)]) * 1000.0, 3)
            for m in LINE["agent_invite"].finditer(agent_log) if m.group(1) in acked}


def place_calls(folder, mechanism, calls, rate, hold_ms, budget):
    """Start the agent, the humans and the customer SIPps; returns them (customer last)."""
    for port in (SYNTHFLOW, HUMANS, CUSTOMER_UAC):
        if port_in_use(port, "udp"):
            raise RuntimeError("127.0.0.1:%d/udp is taken (a leftover SIPp?)" % port)
    agent = load_sipp(folder, "agent", "agent.xml", SYNTHFLOW, calls, budget, hold_ms=hold_ms).start()
    humans = load_sipp(folder, "humans", "humans.xml", HUMANS, calls, budget, hold_ms=hold_ms).start()
    customer = load_sipp(folder, "customer", "customer.xml", CUSTOMER_UAC, calls, budget,
                        remote="127.0.0.1:%d" % ASTERISK_SIP_PORT, rate=rate,
                        service=EXTENSIONS[mechanism]).start()
    return agent, humans, customer
