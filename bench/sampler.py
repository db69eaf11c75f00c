"""Sample CPU, RSS and threads of the processes under test from the host's /proc.

The container shares the host's kernel, so Asterisk and the FastAGI server are ordinary
host processes; reading /proc costs microseconds and needs no ``podman exec``.  The
sampler only reads: it never signals or stops anything.
"""
import os
import threading
import time
from pathlib import Path

from lab_run import ESTABLISHED, local_sockets  # tests/e2e, on sys.path via the bench's entry points

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """{'rss_kb', 'hwm_kb', 'threads'} of a live process, or None."""
    try:
        text = Path("/proc/%d/status" % pid).read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def number(key):
        return int(fields.get(key, "0").split()[0])
    return {"rss_kb": number("VmRSS"), "hwm_kb": number("VmHWM"), "threads": number("Threads")}


def established(port):
    """TCP connections accepted on local ``port`` and still open (a FastAGI server's calls in flight).

    A parked call (waiting inside Dial) holds no thread, so threads no longer count calls;
    its connection does.  The lab runs on the host's network, so the host's tables list it.
    """
    return sum(1 for _, p, state in local_sockets("tcp") if p == port and state == ESTABLISHED)


def proc_cpu_seconds(pid):
    """User + system CPU seconds a process (all its threads) has used, or None."""
    try:
        raw = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def host_cpu():
    """(busy, total) jiffies of the whole machine, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def pid_namespace(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def find_in_namespace(anchor_pid, *words):
    """Host PIDs of processes in anchor_pid's PID namespace whose command line has every word."""
    namespace = pid_namespace(anchor_pid)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or pid_namespace(int(entry.name)) != namespace:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if all(word in cmdline for word in words):
            found.append(int(entry.name))
    return sorted(found)


class Sampler:
    """Samples named PIDs every ``interval`` seconds in a thread, until stop()."""

    def __init__(self, pids, interval=0.25, port=None):
        self.pids = dict(pids)
        self.interval = interval
        self.port = port  # also count the connections established on it (see established())
        self.connections = []  # (t, count)
        self.samples = []  # (t, host (busy, total), {name: (cpu_s, status)})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        while True:
            per = {name: (proc_cpu_seconds(pid), proc_status(pid)) for name, pid in self.pids.items()}
            now = time.time()
            self.samples.append((now, host_cpu(), per))
            if self.port is not None:
                self.connections.append((now, established(self.port)))
            if self._stop.wait(self.interval):
                return

    def cpu_shares(self, start=None, end=None):
        """Average CPU use over [start, end] (wall seconds): {'host': cores busy, name: cores}."""
        window = [s for s in self.samples if (start is None or s[0] >= start) and (end is None or s[0] <= end)]
        if len(window) < 2:
            return {}
        first, last = window[0], window[-1]
        elapsed = last[0] - first[0]
        busy = last[1][0] - first[1][0]
        total = last[1][1] - first[1][1]
        shares = {"host": round(os.cpu_count() * busy / total, 2) if total else None}
        for name in self.pids:
            before, after = first[2][name][0], last[2][name][0]
            if before is not None and after is not None and elapsed > 0:
                shares[name] = round((after - before) / elapsed, 2)
        return shares

    def series(self, name, key):
        """[(t, value)] of one status field of one process."""
        return [(s[0], s[2][name][1][key]) for s in self.samples if s[2].get(name) and s[2][name][1]]
