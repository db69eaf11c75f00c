"""The FastAGI server's counts, for its periodic and on-exit summary lines."""

from __future__ import annotations

import collections
import threading
from typing import Optional

# A connection closed without a byte (a load balancer's health check) is no call.
PROBE = "probe"


class Stats:
    """Counts for the periodic and on-exit summary lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_status: "collections.Counter[str]" = collections.Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rejected = 0
        self.failed = 0
        self.probes = 0
        self.refused_peers = 0

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def end(self, status: Optional[str]) -> None:
        with self._lock:
            self.in_flight -= 1
            if status == PROBE:
                self.probes += 1
            elif status is None:
                self.failed += 1
            else:
                self.by_status[status] += 1

    def line(self) -> str:
        """Format the summary as one logfmt line."""
        with self._lock:
            statuses = " ".join(f"{key.lower()}={value}" for key, value in sorted(self.by_status.items()))
            return (f"summary calls={sum(self.by_status.values())} {statuses} in_flight={self.in_flight} "
                    f"peak_in_flight={self.peak_in_flight} rejected={self.rejected} broken_connections={self.failed} "
                    f"probes={self.probes} refused_peers={self.refused_peers}").replace("  ", " ")
