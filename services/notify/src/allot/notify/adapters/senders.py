"""Outbound I/O: HTTP posts (Slack incoming webhooks, generic webhooks) with httpx, email with aiosmtplib.

Every connection is pinned to checked addresses: the host is resolved once, every address it resolves to is checked
(allot.notify.domain.urls), and the connection goes to one of those addresses, never to the name, so a DNS server
that answers a public address to the check and an internal one to a second lookup (DNS rebinding) gains nothing.
TLS still verifies the certificate against the host name. HTTP follows no redirects and has a timeout; every SMTP
session uses STARTTLS and login when the channel says so.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from email.message import EmailMessage

import aiosmtplib
import httpcore
import httpx

from allot.notify.domain.model import EmailConfig, NotifyProblem
from allot.notify.domain.policy import AttemptResult
from allot.notify.domain.render import EmailBody
from allot.notify.domain.urls import check_addresses, parse_outbound_url

#: Every address a host name resolves to (host, port -> addresses); [] when it does not resolve.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the system's order of preference without repeats (an IP literal
    resolves to itself); [] when it does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def reachable_addresses(host: str, port: int, *, field: str, allow_loopback: bool,
                              resolver: Resolver = resolve) -> list[str]:
    """The addresses to connect to for ``host``: one lookup, every answer checked; NotifyProblem naming ``field``
    when it does not resolve or any answer may not be reached. Connect to these, never to the name again."""
    addresses = await resolver(host, port)
    check_addresses(host, addresses, field=field, allow_loopback=allow_loopback)
    return addresses


async def check_url(url: str, *, field: str, development: bool, allow_loopback: bool,
                    resolver: Resolver = resolve) -> str:
    """The URL's host when it may be reached now; NotifyProblem naming ``field`` otherwise."""
    target = parse_outbound_url(url, field=field, development=development)
    await reachable_addresses(target.host, target.port, field=field, allow_loopback=allow_loopback, resolver=resolver)
    return target.host


async def check_host(host: str, port: int, *, field: str, allow_loopback: bool, resolver: Resolver = resolve) -> None:
    await reachable_addresses(host, port, field=field, allow_loopback=allow_loopback, resolver=resolver)


class _PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connections open their sockets here: the origin host is resolved and checked once, then the
    connection goes to a checked address. httpcore starts TLS afterwards with ``server_hostname`` = the origin host,
    so SNI and certificate verification still use the name."""

    def __init__(self, *, allow_loopback: bool, resolver: Resolver) -> None:
        self.allow_loopback = allow_loopback
        self.resolver = resolver
        self._backend = httpcore.AnyIOBackend()  # what httpcore's default backend uses under asyncio

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                # NotifyProblem passes through httpcore and httpx unchanged (they map only their own errors)
                addresses = await reachable_addresses(host, port, field="url", allow_loopback=self.allow_loopback,
                                                      resolver=self.resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        error: Exception = httpcore.ConnectError(f"could not connect to {host!r}")
        for address in addresses:  # the next one only when one fails to connect
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=None if deadline is None else max(deadline - loop.time(), 0.0),
                    local_address=local_address, socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool opening connections through ``_PinnedNetworkBackend``.

    httpx 0.28 builds its httpcore pool inside ``AsyncHTTPTransport.__init__`` and has no parameter for the network
    backend, so the pool it built (which has opened nothing yet) is replaced by the one it would build with our
    settings (TLS verification against certifi, httpx's default limits, no proxy) plus the backend."""

    def __init__(self, backend: _PinnedNetworkBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=100, max_keepalive_connections=20,
            keepalive_expiry=5.0, network_backend=backend)


class HttpSender:
    """POSTs JSON bodies; the result is what the receiver answered (or why nothing came back)."""

    def __init__(self, *, timeout_s: float, development: bool, allow_loopback: bool,
                 resolver: Resolver = resolve) -> None:
        self.development = development
        self.allow_loopback = allow_loopback
        transport = _PinnedTransport(_PinnedNetworkBackend(allow_loopback=allow_loopback, resolver=resolver))
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False,
                                         trust_env=False, headers={"User-Agent": "Allot-Notify/1.0"})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        try:
            parse_outbound_url(url, field="url", development=self.development)
            r = await self._client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        except NotifyProblem as exc:  # the URL, or an address its host resolved to when connecting
            return AttemptResult(refused=True, error=f"refused: {exc.message}")
        except httpx.TimeoutException:
            return AttemptResult(error="timeout")
        except httpx.HTTPError as exc:  # the message may quote the URL, whose path is a secret for Slack
            text = str(exc).replace(url, "<url>").replace(httpx.URL(url).path, "<path>")
            return AttemptResult(error=f"{type(exc).__name__}: {text[:200]}")
        return AttemptResult(status=r.status_code, retry_after=r.headers.get("Retry-After"))

    async def aclose(self) -> None:
        await self._client.aclose()


async def _open_socket(addresses: list[str], port: int) -> socket.socket:
    """A TCP socket connected to the first of ``addresses`` that accepts; closed on failure and on cancellation."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"no address to connect to on port {port}")
    for address in addresses:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (address, port))
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):  # cancelled (also how a timeout ends it): no next address
                raise
            error = exc
            continue
        return sock
    raise error


class SmtpSender:
    """Sends one message per call over SMTP: STARTTLS and login when configured, a timeout per session."""

    def __init__(self, *, timeout_s: float, allow_loopback: bool, tls_context: ssl.SSLContext | None = None,
                 resolver: Resolver = resolve) -> None:
        self.timeout_s = timeout_s
        self.allow_loopback = allow_loopback
        self.tls_context = tls_context
        """Certificates to trust (None: the system's; tests pass their own CA)."""
        self.resolver = resolver

    async def send(self, cfg: EmailConfig, password: str | None, body: EmailBody, *,
                   message_id: str) -> AttemptResult:
        msg = EmailMessage()
        msg["Subject"] = body.subject
        msg["From"] = cfg.from_address
        msg["To"] = ", ".join(cfg.to_addresses)
        msg["Message-ID"] = f"<{message_id}@allot.notify>"
        msg["X-Allot-Notification-Id"] = message_id
        msg.set_content(body.text)
        msg.add_alternative(body.html, subtype="html")
        try:
            async with asyncio.timeout(self.timeout_s):  # the lookup and the TCP connection; aiosmtplib times the rest
                addresses = await reachable_addresses(cfg.smtp_host, cfg.smtp_port, field="email.smtp_host",
                                                      allow_loopback=self.allow_loopback, resolver=self.resolver)
                sock = await _open_socket(addresses, cfg.smtp_port)
        except NotifyProblem as exc:
            return AttemptResult(refused=True, error=f"refused: {exc.message}")
        except TimeoutError:
            return AttemptResult(error=f"TimeoutError: connecting to {cfg.smtp_host} timed out")
        except OSError as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {str(exc)[:200]}")
        try:
            # aiosmtplib's transport now owns the socket and closes it, on failure too (closing it here as well could
            # pull it from under a TLS shutdown still under way). ``hostname`` is not looked up: it is the TLS server
            # name (implicit TLS and STARTTLS), so the certificate is checked against the name. With ``sock``
            # aiosmtplib wants no port.
            await aiosmtplib.send(
                msg, hostname=cfg.smtp_host, port=None, sock=sock, use_tls=cfg.implicit_tls,
                start_tls=cfg.starttls and not cfg.implicit_tls, tls_context=self.tls_context,
                username=cfg.smtp_username, password=password if cfg.smtp_username else None, timeout=self.timeout_s)
        except aiosmtplib.SMTPResponseException as exc:
            return AttemptResult(smtp_code=exc.code, error="" if exc.code < 400 else f"SMTP {exc.code}: "
                                                                                     f"{exc.message[:200]}")
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return AttemptResult(smtp_code=250)
