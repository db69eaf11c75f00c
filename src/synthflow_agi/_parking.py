"""Calls waiting inside Asterisk's Dial, held by one selector thread instead of a thread each.

In dial mode a FastAGI call spends the whole AI conversation in ``EXEC Dial``, silent,
waiting for one reply. A thread per such call costs tens of KB (its stack and interpreter
state) for minutes; a parked call is its socket in an epoll set plus the few objects
needed to finish it. When the socket turns readable (the Dial's reply, a ``HANGUP``
notice, or the end of the connection), the call gets a thread again to read the reply
and publish its status, exactly as if it had waited in place.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Callable, Dict

from ._logging import LOGGER

Resume = Callable[[], None]


class DialParking:
    """Sockets whose call waits for a reply; ``resume`` runs in a new thread once one arrives."""

    def __init__(self, thread_name: str = "dial-parking") -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._arriving: Dict[int, "tuple[socket.socket, Resume]"] = {}
        self._parked = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=thread_name, daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        """Calls parked now."""
        with self._lock:
            return self._parked + len(self._arriving)

    def park(self, sock: socket.socket, resume: Resume) -> None:
        """Hold ``sock`` until it is readable, then run ``resume`` in a thread of its own."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the dial parking is closed")
            self._arriving[sock.fileno()] = (sock, resume)
        self._wake()

    def close(self) -> None:
        """Stop watching; calls still parked stay parked (their sockets close with the process)."""
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(5)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _wake(self) -> None:
        try:
            self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up already waits, or the parking is closing

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                arriving, self._arriving = self._arriving, {}
                self._parked += len(arriving)
            for sock, resume in arriving.values():
                self._selector.register(sock, selectors.EVENT_READ, resume)
            for key, _ in self._selector.select():
                if key.data is None:
                    try:
                        self._wake_reader.recv(4096)
                    except BlockingIOError:
                        pass
                    continue
                self._selector.unregister(key.fileobj)
                with self._lock:
                    self._parked -= 1
                self._start(key.data)

    @staticmethod
    def _start(resume: Resume) -> None:
        try:
            threading.Thread(target=resume, name="dial-resume", daemon=True).start()
        except RuntimeError:  # no thread to be had: finish it here rather than never
            LOGGER.warning("no thread to resume a call after its Dial; finishing it in the parking thread")
            resume()
