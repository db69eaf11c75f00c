"""A circuit breaker for prepare_inbound: fail fast while Synthflow is down.

During an outage every call would wait out ``timeout`` before its fallback.
After ``breaker_failures`` consecutive failures on Synthflow's side the circuit
opens and calls fail at once, with no request sent.  After ``breaker_cooldown``
seconds one call probes (half-open); its success closes the circuit, its
failure opens it for another cooldown.

The state is an immutable ``Circuit`` and the transitions are pure functions
of it, a ``Policy`` and the time, so they are tested without sleeping.
``Breaker`` applies them to a store: memory for the FastAGI server (one
process, many threads), or a small file for the classic AGI (a process per
call), replaced whole by rename and read without a lock.  A file that is
missing, unreadable or corrupt, or a directory that cannot be written, leaves
the circuit closed: the breaker can only ever make a call faster, never fail one.

Longer than most modules: the transitions, their doctests and the two stores
they run on are one unit, and splitting them would scatter the state's format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import stat
import threading
import time
from typing import Callable, Iterator, Optional, Tuple

from ._errors import ApiUnavailableError

# Longer than the longest ``timeout`` (60 s): a probe silent for longer died with its process.
PROBE_LEASE = 75.0
MAX_STATE_BYTES = 4096
MAX_FAILURES = 10 ** 6
# Writers hold the file lock for one small read and one rename; never wait long on it.
LOCK_WAIT = 0.2
_LOG = logging.getLogger("synthflow_agi")


@dataclasses.dataclass(frozen=True)
class Policy:
    """When to open (consecutive failures) and how long to stay open (seconds)."""

    failures: int
    cooldown: float


@dataclasses.dataclass(frozen=True)
class Circuit:
    """The breaker's state; times are seconds since the epoch (shared between processes)."""

    failures: int = 0                       # consecutive failures on Synthflow's side
    since: Optional[float] = None           # when this outage first opened the circuit
    opened_at: Optional[float] = None       # when it last opened: the cooldown runs from here
    probe_started: Optional[float] = None   # when the half-open probe was let through

    @property
    def phase(self) -> str:
        """``closed``, ``open`` or ``half-open`` (a probe is out)."""
        if self.opened_at is None:
            return "closed"
        return "open" if self.probe_started is None else "half-open"

    def refusal(self) -> str:
        """The SYNTHFLOW_ERROR of a call the open circuit turned away."""
        return (f"circuit open since {utc(self.since or self.opened_at or 0.0)} after {self.failures} "
                "failures on Synthflow's side; no request sent")


CLOSED = Circuit()


def admit(circuit: Circuit, policy: Policy, now: float) -> Tuple[bool, Circuit]:
    """Return whether a call may go to Synthflow, and the state after letting it (or not).

    >>> policy = Policy(failures=5, cooldown=30)
    >>> admit(CLOSED, policy, 100.0)[0]
    True
    >>> admit(Circuit(5, 100.0, 100.0), policy, 110.0)[0]
    False
    >>> admit(Circuit(5, 100.0, 100.0), policy, 130.0)
    (True, Circuit(failures=5, since=100.0, opened_at=100.0, probe_started=130.0))
    >>> admit(Circuit(5, 100.0, 100.0, probe_started=130.0), policy, 131.0)[0]
    False
    """
    if circuit.opened_at is None:
        return True, circuit
    # A clock stepped back (now earlier than a stored time) must not hold the circuit open.
    if circuit.probe_started is not None and 0 <= now - circuit.probe_started < PROBE_LEASE:
        return False, circuit
    if 0 <= now - circuit.opened_at < policy.cooldown:
        return False, circuit
    return True, dataclasses.replace(circuit, probe_started=now)


def failed(circuit: Circuit, policy: Policy, now: float, probe: Optional[float]) -> Circuit:
    """The state after a failure on Synthflow's side; ``probe`` is the claim time if the call probed.

    >>> failed(Circuit(4), Policy(5, 30), 100.0, None)
    Circuit(failures=5, since=100.0, opened_at=100.0, probe_started=None)
    >>> failed(Circuit(5, 100.0, 100.0, 130.0), Policy(5, 30), 131.0, 130.0)
    Circuit(failures=6, since=100.0, opened_at=131.0, probe_started=None)
    """
    failures = min(circuit.failures + 1, MAX_FAILURES)
    if circuit.opened_at is None:
        if failures >= policy.failures:
            return Circuit(failures, since=now, opened_at=now)
        return Circuit(failures)
    if probe is not None and circuit.probe_started == probe:
        return Circuit(failures, since=circuit.since, opened_at=now)
    # A call let through before the circuit opened: count it, keep the cooldown.
    return dataclasses.replace(circuit, failures=failures)


def succeeded(circuit: Circuit) -> Circuit:
    """Any answer that registered a call closes the circuit and resets the count."""
    return CLOSED


def released(circuit: Circuit, probe: Optional[float]) -> Circuit:
    """A call that ended without a verdict on Synthflow's health (401, 4xx, hangup) frees its probe."""
    if probe is not None and circuit.probe_started == probe:
        return dataclasses.replace(circuit, probe_started=None)
    return circuit


def utc(timestamp: float) -> str:
    """Format seconds since the epoch as an ISO 8601 UTC time.

    >>> utc(1796514012.7)
    '2026-12-05T23:40:12Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def transition(old: Circuit, new: Circuit, policy: Policy, reason: str) -> str:
    """The log line for a change of phase, or "" when the phase did not change."""
    if new.phase == "open" and old.phase == "closed":
        return (f"circuit open: {new.failures} consecutive failures on Synthflow's side (last: {reason}); "
                f"calls fail fast for {policy.cooldown:g}s")
    if new.phase == "half-open" and new.probe_started != old.probe_started:
        return "circuit half-open: the cooldown is over, one probe call goes to Synthflow"
    if new.phase == "closed" and old.phase != "closed":
        return "circuit closed: prepare_inbound succeeded"
    if new.phase == "open" and old.phase == "half-open":
        if new.opened_at != old.opened_at:
            return f"circuit open again: the probe failed ({reason}); next probe in {policy.cooldown:g}s"
        return f"circuit open: the probe ended without a verdict ({reason}); the next call probes"
    return ""


def encode(circuit: Circuit) -> bytes:
    """The state file's content."""
    return json.dumps({"v": 1, **dataclasses.asdict(circuit)}, sort_keys=True).encode("ascii")


def decode(data: bytes) -> Circuit:
    """Parse the state file; ValueError for anything this program did not write.

    >>> decode(encode(Circuit(5, 100.0, 100.0)))
    Circuit(failures=5, since=100.0, opened_at=100.0, probe_started=None)
    >>> decode(b'{"v": 1, "failures": -1}')
    Traceback (most recent call last):
    ValueError: failures is not a count
    """
    raw = json.loads(data.decode("ascii"))
    if not isinstance(raw, dict) or raw.get("v") != 1:
        raise ValueError("not a version 1 state object")
    failures = raw.get("failures")
    if type(failures) is not int or not 0 <= failures <= MAX_FAILURES:
        raise ValueError("failures is not a count")
    times = {}
    for name in ("since", "opened_at", "probe_started"):
        value = raw.get(name)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} is not a time")
        times[name] = None if value is None else float(value)
    return Circuit(failures, **times)


class MemoryStore:
    """The state of one process, for the FastAGI server's threads."""

    def __init__(self) -> None:
        self._circuit = CLOSED
        self._lock = threading.Lock()

    def peek(self) -> Circuit:
        return self._circuit

    def update(self, change: Callable[[Circuit], Circuit]) -> Tuple[Circuit, Circuit, bool]:
        """Apply ``change`` atomically; return the old state, the new one and whether it was stored."""
        with self._lock:
            old = self._circuit
            self._circuit = change(old)
            return old, self._circuit, True


class FileStore:
    """The state shared by classic AGI processes: one small file, replaced whole by rename."""

    def __init__(self, directory: str, key: str) -> None:
        self._directory = directory
        self.path = os.path.join(directory, f"circuit-{key}.json")
        self._complained = False

    def peek(self) -> Circuit:
        try:
            # O_NONBLOCK: a FIFO planted in the directory must not hang the call.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return CLOSED
        except OSError as exc:
            self._complain(f"cannot read {self.path} ({exc.strerror or exc})")
            return CLOSED
        try:
            if not _is_regular(fd):
                raise ValueError("not a regular file")
            data = os.read(fd, MAX_STATE_BYTES + 1)
            if len(data) > MAX_STATE_BYTES:
                raise ValueError("larger than a state file")
            return decode(data)
        except (OSError, ValueError) as exc:
            self._complain(f"ignoring {self.path}: {type(exc).__name__}")
            return CLOSED
        finally:
            os.close(fd)

    def update(self, change: Callable[[Circuit], Circuit]) -> Tuple[Circuit, Circuit, bool]:
        with self._locked():
            old = self.peek()
            new = change(old)
            return old, new, new == old or self._write(new)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock on the directory serialises writers; it is released if the holder dies.
        import fcntl

        try:
            fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            yield  # no directory: nothing will be written either
            return
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        self._complain(f"{self._directory} stayed locked for {LOCK_WAIT:g}s; updating without the lock")
                        break
                    time.sleep(0.002)
            yield
        finally:
            os.close(fd)  # also releases the lock

    def _write(self, circuit: Circuit) -> bool:
        temporary = os.path.join(self._directory, f".{os.path.basename(self.path)}.{os.getpid()}.{time.monotonic_ns()}")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileNotFoundError:
            # No directory is how the classic AGI's breaker is left off (docs/circuit-breaker.md);
            # saying so on every failing call would drown the call lines.
            return False
        except OSError as exc:
            self._complain(f"cannot write in {self._directory} ({exc.strerror or exc}); the circuit stays closed")
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encode(circuit))
            os.replace(temporary, self.path)
            return True
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if not isinstance(exc, OSError):
                raise
            self._complain(f"cannot replace {self.path} ({exc.strerror or exc}); the circuit stays closed")
            return False

    def _complain(self, message: str) -> None:
        if not self._complained:
            self._complained = True
            _LOG.warning("circuit breaker: %s", message)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


@dataclasses.dataclass(frozen=True)
class Ticket:
    """A call let through; ``probe`` is the claim time when it is the half-open probe."""

    probe: Optional[float] = None


class Breaker:
    """Applies the transitions to a store, raises for refused calls and logs each change of phase once."""

    def __init__(self, store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def circuit(self) -> Circuit:
        """The state as stored now, for a reader such as a metrics scrape."""
        return self._store.peek()

    def admit(self, policy: Policy) -> Ticket:
        """Let a call through, or raise ``ApiUnavailableError`` when the circuit is open."""
        if self._store.peek().opened_at is None:
            return Ticket()  # closed: one read, no lock, no write
        now = self._clock()
        old, new, stored = self._apply(lambda circuit: admit(circuit, policy, now)[1], policy, "")
        if not admit(old, policy, now)[0]:
            raise ApiUnavailableError(old.refusal())
        # Unstored (an unwritable directory), the claim is nobody's: the call just goes through.
        return Ticket(now if stored and new.probe_started == now != old.probe_started else None)

    def succeeded(self, ticket: Ticket, policy: Policy) -> None:
        if ticket.probe is None and self._store.peek() == CLOSED:
            return  # the common case: nothing to reset, nothing to write
        self._apply(succeeded, policy, "")

    def failed(self, ticket: Ticket, policy: Policy, reason: str) -> None:
        now = self._clock()
        self._apply(lambda circuit: failed(circuit, policy, now, ticket.probe), policy, reason)

    def released(self, ticket: Ticket, policy: Policy, reason: str) -> None:
        if ticket.probe is not None:
            self._apply(lambda circuit: released(circuit, ticket.probe), policy, reason)

    def _apply(self, change, policy: Policy, reason: str) -> Tuple[Circuit, Circuit, bool]:
        old, new, stored = self._store.update(change)
        line = transition(old, new, policy, reason) if stored else ""
        if line:
            _LOG.log(logging.WARNING if new.phase == "open" else logging.INFO, line)
        return old, new, stored


class Circuits:
    """One breaker per API URL (and state directory), for the life of the process."""

    def __init__(self, shared_through_files: bool, clock: Callable[[], float] = time.time) -> None:
        self._files = shared_through_files
        self._clock = clock
        self._breakers: dict = {}
        self._lock = threading.Lock()

    def breaker_for(self, api_url: str, state_dir: str) -> Breaker:
        key = (api_url, state_dir if self._files else "")
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                if self._files:
                    # Named by the URL's digest: two configurations sharing a directory never mix.
                    store = FileStore(state_dir, hashlib.sha256(api_url.encode("utf-8")).hexdigest()[:16])
                else:
                    store = MemoryStore()
                breaker = self._breakers[key] = Breaker(store, self._clock)
            return breaker
