"""Email over SMTPS (RFC 8314, implicit TLS as on port 465) to a real aiosmtpd on loopback with a certificate
made for the test: delivered when the certificate is trusted, refused when it is not (verification stays on)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from allot.notify.adapters.senders import SmtpSender
from allot.notify.domain.model import NotifyProblem, validate_email_config
from allot.notify.domain.render import EmailBody
from allot.runtime.embedded import free_port
from tests.service.notify.notify_support import _Inbox

BODY = EmailBody(subject="Pool frozen", text="The pool was frozen.", html="<p>The pool was frozen.</p>")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as an operator would make one)."""
    d = tmp_path_factory.mktemp("smtps")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtps(certificate: tuple[Path, Path]) -> Iterator[tuple[_Inbox, int]]:
    """aiosmtpd speaking TLS from the first byte (no STARTTLS) on a loopback port."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*certificate)
    inbox, port = _Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_ctx)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _config(port: int, implicit_tls: bool | None = True):  # type: ignore[no-untyped-def]
    return validate_email_config(smtp_host="127.0.0.1", smtp_port=port, smtp_username=None, starttls=True,
                                 from_address="allot@example.com", to_addresses=["ops@example.com"],
                                 development=False, implicit_tls=implicit_tls)


async def test_mail_goes_over_implicit_tls_when_the_certificate_is_trusted(smtps, certificate) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtps
    trusted = ssl.create_default_context(cafile=str(certificate[0]))
    sender = SmtpSender(timeout_s=5.0, allow_loopback=True, tls_context=trusted)
    result = await sender.send(_config(port), None, BODY, message_id="n-1")
    assert result.smtp_code == 250 and not result.error
    assert [m["Subject"] for m in inbox.messages] == ["Pool frozen"]
    assert inbox.envelopes == [("allot@example.com", ["ops@example.com"])]


async def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(smtps) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtps
    sender = SmtpSender(timeout_s=5.0, allow_loopback=True)  # the system's trust store: it does not know the test CA
    result = await sender.send(_config(port), None, BODY, message_id="n-2")
    assert result.smtp_code is None and "certificate" in result.error.lower(), result
    assert inbox.messages == []


async def test_without_implicit_tls_the_smtps_server_cannot_be_talked_to(smtps, certificate) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtps
    sender = SmtpSender(timeout_s=3.0, allow_loopback=True,
                         tls_context=ssl.create_default_context(cafile=str(certificate[0])))
    result = await sender.send(_config(port, implicit_tls=False), None, BODY, message_id="n-3")
    assert result.error and inbox.messages == []


def test_port_465_means_implicit_tls_and_plain_text_stays_development_only() -> None:
    assert _config(465, implicit_tls=None).implicit_tls is True
    cfg = _config(587, implicit_tls=None)
    assert cfg.implicit_tls is False and cfg.starttls is True
    # Implicit TLS is encrypted: STARTTLS may be off with it outside development, never without it.
    assert validate_email_config(smtp_host="mail.example.com", smtp_port=465, smtp_username=None, starttls=False,
                                 from_address="a@example.com", to_addresses=["b@example.com"],
                                 development=False).implicit_tls
    with pytest.raises(NotifyProblem) as err:
        validate_email_config(smtp_host="mail.example.com", smtp_port=587, smtp_username=None, starttls=False,
                              from_address="a@example.com", to_addresses=["b@example.com"], development=False)
    assert err.value.field == "email.starttls"
