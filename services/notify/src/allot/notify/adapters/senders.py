"""Outbound I/O: HTTP posts (Slack incoming webhooks, generic webhooks) with httpx, email with aiosmtplib.

Every HTTP request first resolves the host and checks each address (allot.notify.domain.urls), follows no
redirects and has a timeout; every SMTP session uses STARTTLS and login when the channel says so.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from email.message import EmailMessage

import aiosmtplib
import httpx

from allot.notify.domain.model import EmailConfig, NotifyProblem
from allot.notify.domain.policy import AttemptResult
from allot.notify.domain.render import EmailBody
from allot.notify.domain.urls import check_addresses, parse_outbound_url


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself); [] when it does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


async def check_url(url: str, *, field: str, development: bool, allow_loopback: bool) -> str:
    """The URL's host when it may be reached now; NotifyProblem naming ``field`` otherwise."""
    target = parse_outbound_url(url, field=field, development=development)
    check_addresses(target.host, await resolve(target.host, target.port), field=field, allow_loopback=allow_loopback)
    return target.host


async def check_host(host: str, port: int, *, field: str, allow_loopback: bool) -> None:
    check_addresses(host, await resolve(host, port), field=field, allow_loopback=allow_loopback)


class HttpSender:
    """POSTs JSON bodies; the result is what the receiver answered (or why nothing came back)."""

    def __init__(self, *, timeout_s: float, development: bool, allow_loopback: bool) -> None:
        self.development = development
        self.allow_loopback = allow_loopback
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False,
                                         headers={"User-Agent": "Allot-Notify/1.0"})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        try:
            await check_url(url, field="url", development=self.development, allow_loopback=self.allow_loopback)
        except NotifyProblem as exc:
            return AttemptResult(refused=True, error=f"refused: {exc.message}")
        try:
            r = await self._client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        except httpx.TimeoutException:
            return AttemptResult(error="timeout")
        except httpx.HTTPError as exc:  # the message may quote the URL, whose path is a secret for Slack
            text = str(exc).replace(url, "<url>").replace(httpx.URL(url).path, "<path>")
            return AttemptResult(error=f"{type(exc).__name__}: {text[:200]}")
        return AttemptResult(status=r.status_code, retry_after=r.headers.get("Retry-After"))

    async def aclose(self) -> None:
        await self._client.aclose()


class SmtpSender:
    """Sends one message per call over SMTP: STARTTLS and login when configured, a timeout per session."""

    def __init__(self, *, timeout_s: float, allow_loopback: bool, tls_context: ssl.SSLContext | None = None) -> None:
        self.timeout_s = timeout_s
        self.allow_loopback = allow_loopback
        self.tls_context = tls_context
        """Certificates to trust (None: the system's; tests pass their own CA)."""

    async def send(self, cfg: EmailConfig, password: str | None, body: EmailBody, *,
                   message_id: str) -> AttemptResult:
        try:
            await check_host(cfg.smtp_host, cfg.smtp_port, field="email.smtp_host", allow_loopback=self.allow_loopback)
        except NotifyProblem as exc:
            return AttemptResult(refused=True, error=f"refused: {exc.message}")
        msg = EmailMessage()
        msg["Subject"] = body.subject
        msg["From"] = cfg.from_address
        msg["To"] = ", ".join(cfg.to_addresses)
        msg["Message-ID"] = f"<{message_id}@allot.notify>"
        msg["X-Allot-Notification-Id"] = message_id
        msg.set_content(body.text)
        msg.add_alternative(body.html, subtype="html")
        try:
            await aiosmtplib.send(
                msg, hostname=cfg.smtp_host, port=cfg.smtp_port, use_tls=cfg.implicit_tls,
                start_tls=cfg.starttls and not cfg.implicit_tls, tls_context=self.tls_context,
                username=cfg.smtp_username, password=password if cfg.smtp_username else None, timeout=self.timeout_s)
        except aiosmtplib.SMTPResponseException as exc:
            return AttemptResult(smtp_code=exc.code, error="" if exc.code < 400 else f"SMTP {exc.code}: "
                                                                                     f"{exc.message[:200]}")
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return AttemptResult(error=f"{type(exc).__name__}: {str(exc)[:200]}")
        return AttemptResult(smtp_code=250)
