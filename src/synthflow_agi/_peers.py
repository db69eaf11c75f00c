"""Who may talk to the FastAGI server: an allow list of networks, and a refusal log that cannot flood.

FastAGI has no authentication: whoever reaches the port can make the server
register calls at Synthflow with the configured token.  The allow list is the
only gate, so it is checked before a connection takes a slot or a byte is read.
"""

from __future__ import annotations

import collections
import ipaddress
from typing import Optional, Sequence, Tuple, Union

from ._errors import ConfigError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
LOOPBACK: Tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
MAX_ALLOW_ENTRIES = 64
MAX_ALLOW_TEXT = 4096
# A refused peer is logged once per window; the table of who was logged is bounded,
# so a flood from many addresses costs memory for at most this many of them.
REFUSAL_LOG_WINDOW = 60.0
MAX_LOGGED_PEERS = 4096


def listens_on_loopback(host: str) -> bool:
    """Whether ``--listen``'s host is a loopback address (or ``localhost``); a name never counts.

    >>> [listens_on_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "0.0.0.0", "::", "pbx.lan")]
    [True, True, True, True, False, False, False]
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_allow(text: Optional[str], listen_host: str) -> Tuple[Network, ...]:
    """The networks ``--allow`` names; loopback only when absent and listening on loopback.

    >>> [str(n) for n in parse_allow(None, "127.0.0.1")]
    ['127.0.0.0/8', '::1/128']
    >>> [str(n) for n in parse_allow("10.0.0.0/8, 192.0.2.7,fd00::/8", "0.0.0.0")]
    ['10.0.0.0/8', '192.0.2.7/32', 'fd00::/8']
    >>> parse_allow(None, "0.0.0.0")
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --allow is required when listening on 0.0.0.0, which is not loopback: FastAGI has no authentication
    >>> parse_allow("10.0.0.1/8", "0.0.0.0")
    Traceback (most recent call last):
    ...
    synthflow_agi._errors.ConfigError: --allow '10.0.0.1/8' is not a network (host bits set? write 10.0.0.0/8)
    """
    if text is None:
        if listens_on_loopback(listen_host):
            return LOOPBACK
        raise ConfigError(f"--allow is required when listening on {listen_host[:60]}, which is not loopback: "
                       "FastAGI has no authentication")
    if len(text) > MAX_ALLOW_TEXT:
        raise ConfigError(f"--allow is longer than {MAX_ALLOW_TEXT} characters")
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ConfigError("--allow names no network")
    if len(items) > MAX_ALLOW_ENTRIES:
        raise ConfigError(f"--allow names more than {MAX_ALLOW_ENTRIES} networks")
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            hint = ""
            try:
                hint = f" (host bits set? write {ipaddress.ip_network(item, strict=False)})"
            except ValueError:
                pass
            raise ConfigError(f"--allow {item[:60]!r} is not a network{hint}") from None
    return tuple(networks)


class AllowList:
    """Membership of a peer address (as a socket reports it) in the allowed networks."""

    def __init__(self, networks: Sequence[Network]) -> None:
        # By version: ipaddress compares the integers of mixed versions without complaint.
        self._v4 = tuple(n for n in networks if n.version == 4)
        self._v6 = tuple(n for n in networks if n.version == 6)

    def allows(self, peer: str) -> bool:
        """Whether ``peer`` may connect; an IPv4 peer of a dual-stack socket is matched as IPv4.

        >>> allow = AllowList(parse_allow("127.0.0.2/32,fd00::/8", "127.0.0.1"))
        >>> [allow.allows(p) for p in ("127.0.0.2", "127.0.0.1", "::ffff:127.0.0.2", "fd00::5", "not an address")]
        [True, False, True, True, False]
        """
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        networks = self._v4 if address.version == 4 else self._v6
        return any(address in network for network in networks)


class RefusalLog:
    """Decides which refusals are logged: the first from an address, then one per window.

    Not locked: the server's accepting thread is its only user.

    >>> log = RefusalLog(window=60.0, max_peers=2)
    >>> [log.note("10.0.0.1", t) for t in (0.0, 1.0, 2.0, 61.0, 62.0)]
    [0, None, None, 2, None]
    >>> log.note("10.0.0.2", 63.0), log.note("10.0.0.3", 64.0), log.note("10.0.0.1", 65.0)
    (0, 0, 0)
    """

    def __init__(self, window: float = REFUSAL_LOG_WINDOW, max_peers: int = MAX_LOGGED_PEERS) -> None:
        self._window = window
        self._max_peers = max_peers
        # peer -> [when it was last logged, refusals since then]; oldest line first.
        self._peers: "collections.OrderedDict[str, list]" = collections.OrderedDict()

    def note(self, peer: str, now: float) -> Optional[int]:
        """Record a refusal; return None to stay silent, or how many went unlogged since this peer's last line."""
        entry = self._peers.get(peer)
        if entry is not None and 0 <= now - entry[0] < self._window:
            entry[1] += 1
            return None
        if entry is not None:
            del self._peers[peer]
        elif len(self._peers) >= self._max_peers:
            self._peers.popitem(last=False)  # the peer logged longest ago
        self._peers[peer] = [now, 0]
        return entry[1] if entry is not None else 0
