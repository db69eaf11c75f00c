"""The impure edges the core is handed, shared by classic AGI and FastAGI.

requests and phonenumbers are imported on first use, so a call that ends
before the API (not answered, bad config) never pays for them.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional, Tuple

from ._breaker import Breaker, Circuits, Policy
from ._call import PreparedCall, PrepareRequest
from ._errors import ApiError
from ._handoff import PrepareApi
from ._settings import Settings

# Where the circuit breaker keeps its state: nowhere (off), this process, or a file per API URL.
CIRCUIT_STORES = ("", "memory", "file")


class ClientCache:
    """One pooled SynthflowClient per (URL, token, retries), shared by every call.

    ``circuit`` puts each client behind a circuit breaker (docs/circuit-breaker.md):
    ``memory`` for one long-lived process, ``file`` for processes that share a state file.
    """

    def __init__(self, pool_size: int = 1, circuit: str = "",
                 on_attempt: Optional[Callable[[str], None]] = None) -> None:
        if circuit not in CIRCUIT_STORES:
            raise ValueError(f"circuit must be one of {CIRCUIT_STORES}")
        self._pool_size = pool_size
        self._on_attempt = on_attempt
        self._clients: Dict[Tuple[str, str, int], PrepareApi] = {}
        self._lock = threading.Lock()
        # Kept across close(): a FastAGI reload must not forget an outage in progress.
        self._circuits = Circuits(shared_through_files=circuit == "file") if circuit else None

    def __call__(self, settings: Settings) -> PrepareApi:
        if self._circuits is None or settings.breaker_failures == 0:
            return self._client(settings)
        breaker = self._circuits.breaker_for(settings.api_url, settings.state_dir)
        policy = Policy(settings.breaker_failures, settings.breaker_cooldown)
        # The client is built only for a call the breaker lets through: a refused
        # classic AGI call never pays for importing requests.
        return GuardedApi(lambda: self._client(settings), breaker, policy)

    def _client(self, settings: Settings) -> PrepareApi:
        key = (settings.api_url, settings.api_token, settings.retries)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from ._api import SynthflowClient

                client = SynthflowClient(settings.api_url, settings.api_token, settings.retries, self._pool_size,
                                         self._on_attempt)
                self._clients[key] = client
            return client

    def circuit_phase(self, settings: Settings) -> str:
        """The phase of the breaker in front of ``settings``' API: ``closed``, ``half-open`` or ``open``."""
        if self._circuits is None or settings.breaker_failures == 0:
            return "closed"
        return self._circuits.breaker_for(settings.api_url, settings.state_dir).circuit().phase

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


class GuardedApi:
    """A PrepareApi behind the circuit breaker: while Synthflow is down, calls fail at once."""

    def __init__(self, api: Callable[[], PrepareApi], breaker: Breaker, policy: Policy) -> None:
        self._api = api
        self._breaker = breaker
        self._policy = policy

    def prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall:
        ticket = self._breaker.admit(self._policy)  # ApiUnavailableError when open: no request
        try:
            prepared = self._api().prepare(request, timeout)
        except ApiError as exc:
            # Only 5xx, timeouts and unreachable count; a refused token or a wrong
            # answer says nothing about Synthflow's health.
            if exc.unavailable:
                self._breaker.failed(ticket, self._policy, exc.reason)
            else:
                self._breaker.released(ticket, self._policy, exc.reason)
            raise
        except BaseException as exc:
            self._breaker.released(ticket, self._policy, type(exc).__name__)
            raise
        self._breaker.succeeded(ticket, self._policy)
        return prepared


def preload() -> None:
    """Import now what the first call would import (a long-lived server's start).

    Python 3.9's import machinery can hand a thread a half-initialised module when
    several threads import the same package at once (phonenumbers imports itself in
    cycles), which failed the first calls of a freshly started FastAGI server.
    """
    from . import _api, _numbers  # noqa: F401


def to_e164(raw: str, region: str, role: str) -> str:
    """Normalise through phonenumbers, imported on first use."""
    from ._numbers import to_e164 as normalise

    return normalise(raw, region, role)


def wrap_api(cache: ClientCache, wrapper: Optional[Callable[[PrepareApi], PrepareApi]] = None):
    """Return the core's ``api_for``: the cached client, optionally wrapped."""
    if wrapper is None:
        return cache
    return lambda settings: wrapper(cache(settings))
