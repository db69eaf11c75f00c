"""The impure edges the core is handed, shared by classic AGI and FastAGI.

requests and phonenumbers are imported on first use, so a call that ends
before the API (not answered, bad config) never pays for them.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional, Tuple

from ._handoff import PrepareApi
from ._settings import Settings


class ClientCache:
    """One pooled SynthflowClient per (URL, token, retries), shared by every call."""

    def __init__(self, pool_size: int = 1) -> None:
        self._pool_size = pool_size
        self._clients: Dict[Tuple[str, str, int], PrepareApi] = {}
        self._lock = threading.Lock()

    def __call__(self, settings: Settings) -> PrepareApi:
        key = (settings.api_url, settings.api_token, settings.retries)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from ._api import SynthflowClient

                client = SynthflowClient(settings.api_url, settings.api_token, settings.retries, self._pool_size)
                self._clients[key] = client
            return client

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


def to_e164(raw: str, region: str, role: str) -> str:
    """Normalise through phonenumbers, imported on first use."""
    from ._numbers import to_e164 as normalise

    return normalise(raw, region, role)


def wrap_api(cache: ClientCache, wrapper: Optional[Callable[[PrepareApi], PrepareApi]] = None):
    """Return the core's ``api_for``: the cached client, optionally wrapped."""
    if wrapper is None:
        return cache
    return lambda settings: wrapper(cache(settings))
