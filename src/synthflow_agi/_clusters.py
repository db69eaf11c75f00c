"""Synthflow's clusters: which API base and SIP host belong together.

A workspace lives in one cluster, and a call prepared through one cluster's
API can only be found by an INVITE to the same cluster's SIP host. Hosts
that are not Synthflow's (a lab, a proxy) belong to no cluster and pair with
anything.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional


class Cluster(NamedTuple):
    """One Synthflow cluster's API base URL and SIP host."""

    api_url: str
    sip_host: str


CLUSTERS: Mapping[str, Cluster] = {
    "us": Cluster("https://api.us.synthflow.ai/v2", "sip.us.synthflow.ai"),
    "eu": Cluster("https://api.eu.synthflow.ai/v2", "sip.eu.synthflow.ai"),
    # Legacy, being retired by the end of 2026; workspaces that did not choose move to US.
    "global": Cluster("https://api.synthflow.ai/v2", "sip.synthflow.ai"),
}
LEGACY_CLUSTER = "global"

_API_HOSTS = {"api.us.synthflow.ai": "us", "api.eu.synthflow.ai": "eu", "api.synthflow.ai": "global"}
# sipin.synthflow.ai is the SIP host older Synthflow pages name for the Global cluster.
_SIP_HOSTS = {"sip.us.synthflow.ai": "us", "sip.eu.synthflow.ai": "eu",
              "sip.synthflow.ai": "global", "sipin.synthflow.ai": "global"}


def cluster_of_api_host(host: str) -> Optional[str]:
    """Name the cluster an API host belongs to, or None for a host that is not Synthflow's.

    >>> cluster_of_api_host('API.EU.synthflow.ai.'), cluster_of_api_host('127.0.0.1')
    ('eu', None)
    """
    return _API_HOSTS.get(host.lower().rstrip("."))


def cluster_of_sip_host(host: str) -> Optional[str]:
    """Name the cluster a SIP host belongs to, or None for a host that is not Synthflow's.

    >>> cluster_of_sip_host('sip.us.synthflow.ai'), cluster_of_sip_host('sipin.synthflow.ai')
    ('us', 'global')
    """
    return _SIP_HOSTS.get(host.lower().rstrip("."))


def mismatch(api_host: str, sip_host: str) -> Optional[str]:
    """Describe an API host and SIP host of two different clusters, or return None.

    >>> mismatch('api.eu.synthflow.ai', 'sip.us.synthflow.ai')
    'api_url is in the eu cluster but sip_host is in the us cluster: the INVITE could never find the prepared call'
    >>> mismatch('api.eu.synthflow.ai', '127.0.0.1') is None
    True
    """
    api, sip = cluster_of_api_host(api_host), cluster_of_sip_host(sip_host)
    if api and sip and api != sip:
        return (f"api_url is in the {api} cluster but sip_host is in the {sip} cluster: "
                "the INVITE could never find the prepared call")
    return None
