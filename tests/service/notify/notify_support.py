"""Real local receivers on loopback for the notifier's service tests: an HTTP server (standing in for Slack and for
webhook receivers; scripted answers, every request recorded) and an SMTP server (aiosmtpd, with login)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from allot.runtime.embedded import free_port
from allot.runtime.sealing import generate_keypair


def notify_keys() -> str:
    """ALLOT_SEALING_PRIVATE_KEYS for a notifier of one test."""
    pair = generate_keypair("notify-test")
    return f"{pair.key_id}:{pair.private_key}"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0


@dataclass
class HttpReceiver:
    """Answers each request with the next scripted (status, headers) and then ``default``; records everything."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    #: this many first requests are recorded but never answered (the sender is killed meanwhile)
    hold: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body, time.monotonic()))
            if self.hold > 0:
                self.hold -= 1
                await self.release.wait()
                return
            status, extra = self.script.pop(0) if self.script else (self.default, {})
            extra_lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n{extra_lines}\r\nok"
                         .encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the notifier hung up mid-request (its timeout): the attempt is its to record
        finally:
            writer.close()


@asynccontextmanager
async def http_receiver(script: list[tuple[int, dict[str, str]]] | None = None, default: int = 200,
                        hold: int = 0) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(script=list(script or []), default=default, hold=hold)
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.close()
        await server.wait_closed()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@dataclass
class SmtpReceiver:
    inbox: _Inbox
    port: int


@contextmanager
def smtp_receiver(username: str, password: str) -> Iterator[SmtpReceiver]:
    """aiosmtpd on loopback requiring login (plain text allowed: loopback test without TLS)."""
    inbox = _Inbox()

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
            username, password)
        if ok:
            inbox.logins.append(username)
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator, auth_required=True,
                            auth_require_tls=False)
    controller.start()
    try:
        yield SmtpReceiver(inbox, port)
    finally:
        controller.stop()
