"""Classic AGI: Asterisk starts this process per call, talking over stdin/stdout.

Only the standard library and this package's light modules load before the
SIGHUP handler is in place; requests and phonenumbers load when first used.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from typing import Iterator, Optional

from . import _dialwait
from ._call import CallInfo, PreparedCall, PrepareRequest
from ._errors import ChannelHungUp
from ._edges import ClientCache, to_e164, wrap_api
from ._handoff import Edges, PrepareApi, finish_dial, hand_off
from ._logging import LOGGER, call_line, call_line_parts, configure
from ._settings import load_base


class SighupWatch:
    """Turn Asterisk's SIGHUP into a hangup the program can act on.

    Outside an API call the signal only marks the channel, so an AGI
    exchange in progress is never cut in half and GET VARIABLE of the
    transfer status still works. During the API call it raises at once:
    waiting out a slow API for a caller who left only delays the dialplan.
    """

    def __init__(self) -> None:
        self.received = False
        self._channel = None
        self._abortable = False

    def install(self) -> None:
        """Take over SIGHUP; the default action would kill the process mid-protocol."""
        signal.signal(signal.SIGHUP, self._on_sighup)

    def attach(self, channel) -> None:
        """Tell the channel about a SIGHUP that came before or after it existed."""
        self._channel = channel
        if self.received:
            channel.mark_hung_up("caller hung up (SIGHUP)")

    @contextlib.contextmanager
    def abortable(self) -> Iterator[None]:
        """Let a SIGHUP abort the block at once."""
        if self.received:
            raise ChannelHungUp("caller hung up (SIGHUP)")
        self._abortable = True
        try:
            yield
        finally:
            self._abortable = False

    def _on_sighup(self, signum, frame) -> None:
        self.received = True
        if self._channel is not None:
            self._channel.mark_hung_up("caller hung up (SIGHUP)")
        if self._abortable:
            self._abortable = False
            raise ChannelHungUp("caller hung up (SIGHUP) during the API call")


class _AbortableApi:
    def __init__(self, api: PrepareApi, watch: SighupWatch) -> None:
        self._api = api
        self._watch = watch

    def prepare(self, request: PrepareRequest, timeout: float) -> PreparedCall:
        with self._watch.abortable():
            return self._api.prepare(request, timeout)


def _wait_in_shell(call: CallInfo, outcome, log_target: str, watch: SighupWatch) -> None:
    """Become the shell that runs the prepared Dial; return only if that is impossible."""
    if watch.received:
        return  # the caller is gone: finish here, where the hangup is already known
    head, tail = call_line_parts(call, outcome)
    wait = _dialwait.DialWait(outcome.pending_dial, outcome.call_id, head, tail,
                              _dialwait.started_ms(outcome.total_ms / 1000.0), log_target, outcome.error,
                              call.context, call.extension)
    try:
        _dialwait.become_waiter(wait)
    except OSError as exc:
        signal.signal(signal.SIGHUP, watch._on_sighup)
        LOGGER.warning("cannot start the dial waiter (%s); dialling from this process", exc.strerror or exc)


def main(argv: Optional[list] = None) -> int:
    """Run one classic AGI hand-off on this process's stdin/stdout; always exit 0."""
    watch = SighupWatch()
    watch.install()
    agi_out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline="\n", write_through=True)
    # Anything that prints by mistake must not corrupt the AGI stream.
    sys.stdout = sys.stderr
    configure("stderr")
    try:
        from ._agi import AgiChannel
        from ._wire import AgiEnvironmentError

        try:
            channel = AgiChannel(sys.stdin.buffer, agi_out)
        except AgiEnvironmentError as exc:
            # Out of step from the first line: no command could be trusted.
            LOGGER.error("refused the AGI environment, ending without a status: %s", exc.reason)
            return 0
        watch.attach(channel)
        base = load_base(os.environ)
        configure(base.log, secrets=base.secrets)
        api_for = wrap_api(ClientCache(circuit="file"), lambda api: _AbortableApi(api, watch))
        edges = Edges(api_for=api_for, to_e164=to_e164, clock=time.monotonic,
                      delegate_dial=_dialwait.usable(os.environ))
        call = CallInfo.from_env(channel.env)
        outcome = hand_off(channel, call, base, edges)
        if outcome.pending_dial:
            _wait_in_shell(call, outcome, base.log, watch)
            outcome = finish_dial(channel, outcome, edges, call)  # only if the shell could not start
        LOGGER.info(call_line(call, outcome))
    except ChannelHungUp as exc:
        LOGGER.info("caller hung up before the hand-off began: %s", exc)
    except Exception:  # noqa: BLE001 - the dialplan must go on, whatever broke
        LOGGER.exception("internal error; SYNTHFLOW_STATUS may be unset")
    finally:
        with contextlib.suppress(OSError, ValueError):
            agi_out.flush()
    return 0
