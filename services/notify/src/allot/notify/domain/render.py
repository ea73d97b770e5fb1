"""Messages for each channel kind, from one notification: Slack Block Kit, email (plain text + HTML), webhook JSON.

Each says what happened (title, summary), to what (entities by name, amounts in their currency), why (the
condition or check and its numbers) and links to the console page when a console URL is configured.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from allot.contracts.currencies import ISO_EXPONENTS
from allot.contracts.payloads import NotificationRequested, NotifiedEntity

#: Entities listed by name in a Slack or email message (the webhook body carries all of them).
MAX_LISTED = 20
_SEVERITY_MARK = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}


def format_money(cents: int, currency: str) -> str:
    """``8412, "EUR"`` → ``"84.12 EUR"``; ISO 4217 decimals; an unknown currency is shown in minor units."""
    exp = ISO_EXPONENTS.get(currency)
    if exp is None:
        return f"{cents} minor units of {currency}"
    if exp == 0:
        return f"{cents} {currency}"
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 10 ** exp)
    return f"{sign}{whole}.{frac:0{exp}d} {currency}"


def fact_lines(n: NotificationRequested) -> list[tuple[str, str]]:
    """(label, value) per fact; ``*_cents`` facts as money in the notification's currency."""
    out = []
    for name, value in n.facts.items():
        if name.endswith("_cents") and isinstance(value, int) and n.currency:
            out.append((name[: -len("_cents")].replace("_", " "), format_money(value, n.currency)))
        else:
            out.append((name.replace("_", " "), "—" if value is None else str(value)))
    return out


def entity_line(e: NotifiedEntity) -> str:
    label = f"{e.name} ({e.entity_type} {e.entity_id})" if e.name else f"{e.entity_type} {e.entity_id}"
    parts = [label]
    if e.amount_cents is not None and e.currency:
        parts.append(format_money(e.amount_cents, e.currency))
    if e.detail:
        parts.append(e.detail)
    return " — ".join(parts)


def console_link(n: NotificationRequested, console_url: str) -> str | None:
    if not console_url or not n.console_path:
        return None
    return console_url.rstrip("/") + n.console_path


def _listed(n: NotificationRequested) -> tuple[list[str], int]:
    lines = [entity_line(e) for e in n.entities[:MAX_LISTED]]
    return lines, max(0, len(n.entities) - MAX_LISTED)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(n: NotificationRequested, *, console_url: str = "") -> dict[str, Any]:
    """A Slack incoming-webhook body: ``text`` (notification fallback) and Block Kit ``blocks``."""
    title = f"{_SEVERITY_MARK[n.severity]} {n.title}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    if n.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(n.summary)[:3000]}})
    if n.condition:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                    "text": f"*Why:* {_slack_escape(n.condition)}"[:3000]}})
    facts = fact_lines(n)
    if facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{_slack_escape(k)}*\n{_slack_escape(v)}"[:2000]} for k, v in facts[:10]]})
    lines, more = _listed(n)
    if lines:
        text = "\n".join(f"• {_slack_escape(line)}" for line in lines) + (f"\n…and {more} more" if more else "")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    link = console_link(n, console_url)
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in Allot"}, "url": link}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"{n.severity} · {n.kind} · {n.occurred_at.isoformat()} · id {n.notification_id}")}]})
    return {"text": f"{n.title}" + (f": {n.summary}" if n.summary else ""), "blocks": blocks}


@dataclass(frozen=True)
class EmailBody:
    subject: str
    text: str
    html: str


def render_email(n: NotificationRequested, *, console_url: str = "") -> EmailBody:
    """Subject, plain-text and HTML bodies of one notification."""
    subject = f"[Allot {n.severity}] {n.title}"[:200]
    facts = fact_lines(n)
    lines, more = _listed(n)
    link = console_link(n, console_url)
    text_parts = [n.title, ""]
    if n.summary:
        text_parts += [n.summary, ""]
    if n.condition:
        text_parts += [f"Why: {n.condition}", ""]
    if facts:
        text_parts += [f"{k}: {v}" for k, v in facts] + [""]
    if lines:
        text_parts += [f"- {line}" for line in lines] + ([f"...and {more} more"] if more else []) + [""]
    if link:
        text_parts += [f"Open in Allot: {link}", ""]
    text_parts.append(f"{n.severity} / {n.kind} / {n.occurred_at.isoformat()} / id {n.notification_id}")
    e = html.escape
    h = [f"<h2>{e(n.title)}</h2>"]
    if n.summary:
        h.append(f"<p>{e(n.summary)}</p>")
    if n.condition:
        h.append(f"<p><strong>Why:</strong> {e(n.condition)}</p>")
    if facts:
        h.append("<table>" + "".join(f"<tr><th align=\"left\">{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
                 + "</table>")
    if lines:
        h.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in lines)
                 + (f"<li>…and {more} more</li>" if more else "") + "</ul>")
    if link:
        h.append(f"<p><a href=\"{e(link, quote=True)}\">Open in Allot</a></p>")
    h.append(f"<p><small>{e(n.severity)} · {e(n.kind)} · {e(n.occurred_at.isoformat())} · id "
             f"{n.notification_id}</small></p>")
    return EmailBody(subject=subject, text="\n".join(text_parts), html="<html><body>" + "".join(h) + "</body></html>")


def render_webhook(n: NotificationRequested, *, console_url: str = "",
                   includes: list[str] | None = None) -> dict[str, Any]:
    """The JSON body of a generic webhook: the notification as published, plus the console link; a digest names
    the notification ids it includes."""
    body = n.model_dump(mode="json")
    body["console_url"] = console_link(n, console_url)
    if includes is not None:
        body["includes"] = list(includes)
    return body
