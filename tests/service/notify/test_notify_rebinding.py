"""DNS rebinding: the notifier connects to the very addresses it checked, never to a second lookup of the name.

Two ways to play the DNS server against real loopback receivers: a resolver injected into the senders (for names
under .test, which real DNS never answers, so a connection that arrives can only have gone to that resolver's
answer), and the event loop's own getaddrinfo replaced for one test, so that every lookup anyone makes (the checks,
httpx, aiosmtplib) gets the rebinding server's answer in turn.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from allot.notify.adapters.senders import HttpSender, SmtpSender, check_host, check_url
from allot.notify.domain.model import EmailConfig, validate_email_config
from allot.notify.domain.render import EmailBody
from allot.runtime.embedded import free_port
from tests.service.notify.notify_support import HttpReceiver, _Inbox, http_receiver, smtp_receiver

HOOK = "hooks.example.test"
MAIL = "mail.example.test"
#: a global address standing for the receiver's public one; no test connects to it (each refuses first)
PUBLIC = "93.184.216.34"
BODY = EmailBody(subject="Pool frozen", text="The pool was frozen.", html="<p>The pool was frozen.</p>")

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="binds 127.0.0.2 and connects to 0.0.0.0 (Linux)")


class ScriptedDns:
    """Answers the n-th lookup with the n-th answer (the last one from then on); records the names looked up."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


def rebind_system_dns(monkeypatch: pytest.MonkeyPatch, name: str, dns: ScriptedDns) -> None:
    """Every getaddrinfo of ``name`` on this test's event loop answers from ``dns``; other names resolve as ever."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str | bytes | None, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        text = host.decode() if isinstance(host, bytes) else host
        if text != name:
            return await real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, int(port)))
                for a in await dns(text, int(port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@asynccontextmanager
async def http_receiver_at(host: str, port: int) -> AsyncIterator[HttpReceiver]:
    """notify_support's HTTP receiver, listening on ``host``:``port`` instead of a free port on 127.0.0.1."""
    receiver = HttpReceiver(port=port)
    server = await asyncio.start_server(receiver._handle, host, port)
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


def _email(port: int, *, username: str | None = None) -> EmailConfig:
    return validate_email_config(smtp_host=MAIL, smtp_port=port, smtp_username=username, starttls=False,
                                 from_address="allot@example.com", to_addresses=["ops@example.com"], development=True)


# HTTP (webhooks and Slack)


async def test_a_post_goes_to_the_address_the_name_was_checked_at() -> None:
    dns = ScriptedDns(["127.0.0.1"])
    sender = HttpSender(timeout_s=5.0, development=True, allow_loopback=True, resolver=dns)
    try:
        async with http_receiver() as receiver:
            result = await sender.post(f"http://{HOOK}:{receiver.port}/hook", b'{"n": 1}', {})
    finally:
        await sender.aclose()
    assert result.status == 200 and result.ok, result
    assert [r.headers["host"] for r in receiver.requests] == [f"{HOOK}:{receiver.port}"]
    assert dns.lookups == [HOOK]  # one lookup, and the connection went to its answer


async def test_a_name_rebound_to_loopback_after_the_channel_was_checked_is_refused() -> None:
    dns = ScriptedDns([PUBLIC], ["127.0.0.1"])
    sender = HttpSender(timeout_s=3.0, development=True, allow_loopback=False, resolver=dns)
    try:
        async with http_receiver() as receiver:
            url = f"http://{HOOK}:{receiver.port}/hook"
            assert await check_url(url, field="url", development=True, allow_loopback=False, resolver=dns) == HOOK
            result = await sender.post(url, b'{"n": 1}', {})
    finally:
        await sender.aclose()
    assert result.refused and not result.ok, result
    assert result.error.startswith("refused: ") and "127.0.0.1" in result.error and "loopback" in result.error
    assert receiver.requests == []
    assert dns.lookups == [HOOK, HOOK]


async def test_a_name_answering_a_metadata_address_beside_a_public_one_is_refused() -> None:
    dns = ScriptedDns([PUBLIC, "169.254.169.254"])
    sender = HttpSender(timeout_s=3.0, development=False, allow_loopback=False, resolver=dns)
    try:
        result = await sender.post(f"https://{HOOK}/hook", b'{"n": 1}', {})
    finally:
        await sender.aclose()
    assert result.refused, result
    assert result.error.startswith("refused: ") and "169.254.169.254" in result.error and "link-local" in result.error


@linux_only
async def test_a_system_dns_rebinding_between_check_and_connect_cannot_move_the_post(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No injected resolver: the system's DNS rebinds. 127.0.0.2 stands for the webhook's public address (loopback is
    allowed here); 0.0.0.0, refused even so, is how Linux reaches this machine's 127.0.0.1: the internal service.
    Checking and then letting httpx look the name up again would post to the internal service."""
    dns = ScriptedDns(["127.0.0.2"], ["127.0.0.2"], ["0.0.0.0"])
    rebind_system_dns(monkeypatch, HOOK, dns)
    sender = HttpSender(timeout_s=5.0, development=True, allow_loopback=True)
    try:
        async with http_receiver() as internal, http_receiver_at("127.0.0.2", internal.port) as webhook:
            url = f"http://{HOOK}:{internal.port}/hook"
            await check_url(url, field="url", development=True, allow_loopback=True)  # the channel is created
            result = await sender.post(url, b'{"n": 1}', {})
    finally:
        await sender.aclose()
    assert internal.requests == []
    assert result.status == 200 and [r.headers["host"] for r in webhook.requests] == [f"{HOOK}:{internal.port}"]


# SMTP


async def test_mail_goes_to_the_address_the_name_was_checked_at() -> None:
    dns = ScriptedDns(["127.0.0.1"])
    sender = SmtpSender(timeout_s=5.0, allow_loopback=True, resolver=dns)
    with smtp_receiver("allot", "pw") as receiver:
        result = await sender.send(_email(receiver.port, username="allot"), "pw", BODY, message_id="n-1")
    assert result.smtp_code == 250 and not result.error, result
    assert [m["Subject"] for m in receiver.inbox.messages] == ["Pool frozen"] and receiver.inbox.logins == ["allot"]
    assert dns.lookups == [MAIL]


async def test_mail_to_a_name_rebound_to_loopback_after_the_channel_was_checked_is_refused() -> None:
    dns = ScriptedDns([PUBLIC], ["127.0.0.1"])
    sender = SmtpSender(timeout_s=3.0, allow_loopback=False, resolver=dns)
    with smtp_receiver("allot", "pw") as receiver:
        await check_host(MAIL, receiver.port, field="email.smtp_host", allow_loopback=False, resolver=dns)
        result = await sender.send(_email(receiver.port, username="allot"), "pw", BODY, message_id="n-2")
    assert result.refused and result.smtp_code is None, result
    assert result.error.startswith("refused: ") and "127.0.0.1" in result.error and "loopback" in result.error
    assert receiver.inbox.messages == [] and receiver.inbox.logins == []
    assert dns.lookups == [MAIL, MAIL]


async def test_mail_to_a_name_answering_a_metadata_address_beside_a_public_one_is_refused() -> None:
    dns = ScriptedDns([PUBLIC, "169.254.169.254"])
    sender = SmtpSender(timeout_s=3.0, allow_loopback=False, resolver=dns)
    result = await sender.send(_email(587), None, BODY, message_id="n-3")
    assert result.refused, result
    assert result.error.startswith("refused: ") and "169.254.169.254" in result.error and "link-local" in result.error


@linux_only
async def test_a_system_dns_rebinding_between_check_and_connect_cannot_move_the_mail(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As for HTTP: the mail server's stand-in listens on 127.0.0.2, the internal one on 127.0.0.1 (0.0.0.0)."""
    dns = ScriptedDns(["127.0.0.2"], ["127.0.0.2"], ["0.0.0.0"])
    rebind_system_dns(monkeypatch, MAIL, dns)
    port = free_port()
    internal, mail_server = _Inbox(), _Inbox()
    controllers = [Controller(internal, hostname="127.0.0.1", port=port),
                   Controller(mail_server, hostname="127.0.0.2", port=port)]
    for c in controllers:
        c.start()
    try:
        await check_host(MAIL, port, field="email.smtp_host", allow_loopback=True)  # the channel is created
        result = await SmtpSender(timeout_s=5.0, allow_loopback=True).send(_email(port), None, BODY, message_id="n-4")
    finally:
        for c in controllers:
            c.stop()
    assert internal.messages == []
    assert result.smtp_code == 250 and [m["Subject"] for m in mail_server.messages] == ["Pool frozen"], result
