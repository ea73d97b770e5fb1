"""Outbound URL checks: a workspace must not use a channel to reach Allot's own network.

Rules: https only outside development; no user info; the host's addresses (an IP literal, or what the caller
resolved the name to) must be public: no private, loopback, link-local (cloud metadata at 169.254.169.254),
multicast, reserved or unspecified addresses. ``allow_loopback`` (a development setting) admits 127.0.0.0/8 and
::1 only. A name may resolve differently later, so the senders resolve it again for every connection, check those
addresses and connect to one of them, never to the name (no second lookup for a DNS server to answer differently).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from allot.notify.domain.model import NotifyProblem

MAX_URL_LEN = 2048
#: Names that always mean "this machine" or a cloud metadata service, whatever DNS says.
_FORBIDDEN_NAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_outbound_url(url: str, *, field: str, development: bool) -> Target:
    """Scheme, host and port of a URL a channel may post to; NotifyProblem naming ``field`` otherwise."""
    if not url or len(url) > MAX_URL_LEN:
        raise NotifyProblem(field, f"must be a URL of at most {MAX_URL_LEN} characters")
    if any(c.isspace() for c in url):
        raise NotifyProblem(field, "must not contain spaces or line breaks")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise NotifyProblem(field, "is not a valid URL") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if development else ("https",)
    if scheme not in allowed:
        raise NotifyProblem(field, "must be an https URL" + (" (or http in development)" if development else ""))
    if parts.username is not None or parts.password is not None:
        raise NotifyProblem(field, "must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise NotifyProblem(field, "has no host")
    internal = host in _FORBIDDEN_NAMES or host.endswith(".localhost") or host.endswith(".internal")
    if internal and not (host == "localhost" and development):
        raise NotifyProblem(field, f"host {host!r} is internal; only public hosts may be reached")
    return Target(scheme, host, port or (443 if scheme == "https" else 80))


def address_problem(address: str, *, allow_loopback: bool) -> str | None:
    """Why ``address`` may not be reached (None = it may)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address[:64]!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "is a loopback address"
    if ip.is_link_local:
        return "is a link-local address (cloud metadata lives there)"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "is not a unicast public address"
    if ip.is_private or not ip.is_global:
        return "is a private address"
    return None


def check_addresses(host: str, addresses: list[str], *, field: str, allow_loopback: bool) -> None:
    """NotifyProblem naming ``field`` when the host has no address or any of its addresses is not public."""
    if not addresses:
        raise NotifyProblem(field, f"host {host!r} does not resolve")
    for a in addresses:
        why = address_problem(a, allow_loopback=allow_loopback)
        if why:
            raise NotifyProblem(field, f"host {host!r} resolves to {a}, which {why}; only public hosts may be "
                                       "reached")


def url_hint(target: Target) -> str:
    """What the API shows of a URL: its host (the path of a Slack or webhook URL is the secret part)."""
    return target.host
