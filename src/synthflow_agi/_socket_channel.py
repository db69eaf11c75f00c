"""The Channel of one FastAGI connection: an AgiChannel on a socket, with its timeouts."""

from __future__ import annotations

import socket
import time
from typing import Optional

from ._agi import AgiChannel, AgiReader, wait_readable

# Commands are short and each is flushed at once, so the default write buffer
# (8 KiB, and 128 KiB from Python 3.14) per call is idle address space; a
# longer line still passes through a small buffer. Reading uses AgiReader.
AGI_BUFFER_BYTES = 1024


class SocketChannel(AgiChannel):
    """An AgiChannel on a socket: silent peers time out, except while Transfer/Dial run.

    The environment block has one deadline for the whole block, so a peer
    that trickles a byte at a time cannot hold a slot for long.
    """

    def __init__(self, sock: socket.socket, read_timeout: float, env_timeout: Optional[float] = None) -> None:
        self._socket = sock
        self._read_timeout = read_timeout
        self._env_deadline: Optional[float] = time.monotonic() + (env_timeout or read_timeout)
        sock.settimeout(read_timeout)
        reader = AgiReader(self._receive, lambda seconds: wait_readable(sock, seconds))
        self._writer = sock.makefile("w", AGI_BUFFER_BYTES, encoding="utf-8", errors="replace", newline="\n")
        try:
            super().__init__(reader, self._writer)
        except BaseException:
            self.close()
            raise
        self._env_deadline = None
        sock.settimeout(read_timeout)

    def _receive(self, size: int) -> bytes:
        if self._env_deadline is not None:
            left = self._env_deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete AGI environment in time")
            self._socket.settimeout(min(left, self._read_timeout))
        return self._socket.recv(size)

    def close(self) -> None:
        """Release the writer on the socket (the server closes the socket itself)."""
        try:
            self._writer.close()
        except OSError:
            pass

    def exec(self, application: str, arguments: str) -> int:
        # Dial returns only when the bridged conversation ends, and Transfer
        # when the REFER settles; neither is a silent peer.
        self._socket.settimeout(None)
        try:
            return super().exec(application, arguments)
        finally:
            self._socket.settimeout(self._read_timeout)
