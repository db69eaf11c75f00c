"""One lab per host at a time: its loopback ports and image tags are fixed, so runs queue.

Several clones (CI, a developer, the benchmark) may share a host.  Their labs would fight
over 127.0.0.1:15060 and over the ``localhost/synthflow-agi-lab:<suite>`` tag, so building
and running a lab happen under one host-wide ``flock``.  The lock is re-entrant within a
process (building happens inside a run) and dies with its holder, so a killed run never
leaves it stuck.
"""
import errno
import fcntl
import os
import tempfile
import time
from pathlib import Path

from lab_build import say

LOCK_PATH = Path(tempfile.gettempdir()) / "synthflow-agi-e2e-lab.lock"
WAIT_LIMIT = 45 * 60  # longer than any one suite or benchmark run


class HostLock:
    def __init__(self, path=LOCK_PATH):
        self.path = path
        self._fd = None
        self._depth = 0

    def acquire(self, wait_limit=WAIT_LIMIT):
        if self._depth == 0:
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o666)
            deadline = time.time() + wait_limit
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        os.close(fd)
                        raise
                if not told:
                    say("another lab run holds %s (pid %s): waiting for it" % (self.path, self._holder()))
                    told = True
                if time.time() > deadline:
                    os.close(fd)
                    raise RuntimeError("the lab lock %s was not released within %d s (pid %s holds it)"
                                       % (self.path, wait_limit, self._holder()))
                time.sleep(0.5)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
        self._depth += 1

    def release(self):
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth == 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def _holder(self):
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


LAB_LOCK = HostLock()
