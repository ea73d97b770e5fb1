"""Money in its currency with the user's locale, times in the ad account's zone, input amounts to minor units."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF", "SEK": "kr", "DKK": "kr", "NOK": "kr",
           "PLN": "zł", "AUD": "A$", "CAD": "CA$", "BRL": "R$", "INR": "₹"}
ZERO_DECIMALS = {"JPY", "KRW", "CLP", "ISK", "HUF", "VND", "TWD"}
#: language → (group separator, decimal separator, symbol before the amount)
LOCALES = {"en": (",", ".", True), "de": (".", ",", False), "es": (".", ",", False), "it": (".", ",", False),
           "nl": (".", ",", False), "pt": (".", ",", False), "fr": ("\u202f", ",", False), "sv": ("\u00a0", ",", False),
           "pl": ("\u00a0", ",", False), "fi": ("\u00a0", ",", False)}


def locale_of(accept_language: str | None) -> str:
    for part in (accept_language or "").split(","):
        lang = part.split(";")[0].strip().split("-")[0].lower()
        if lang in LOCALES:
            return lang
    return "en"


def decimals(currency: str) -> int:
    return 0 if currency in ZERO_DECIMALS else 2


def money(cents: int | None, currency: str | None, locale: str = "en") -> str:
    """``€1,234.56`` (en) or ``1.234,56 €`` (de): integer minor units, exact."""
    if cents is None:
        return "—"
    currency = currency or "EUR"
    group, point, before = LOCALES.get(locale, LOCALES["en"])
    d = decimals(currency)
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(int(cents)), 10**d) if d else (abs(int(cents)), 0)
    text = f"{units:,}".replace(",", group) + (f"{point}{rest:0{d}d}" if d else "")
    symbol = SYMBOLS.get(currency, currency)
    return f"{sign}{symbol}{text}" if before and len(symbol) <= 2 else f"{sign}{text}\u00a0{symbol}"


_CENTS = re.compile(r"\b(\d+) cents\b")


def humanize(message: str, currency: str | None, locale: str = "en") -> str:
    """A service's message with its ``12000 cents`` shown as money (``€120.00``)."""
    return _CENTS.sub(lambda m: money(int(m.group(1)), currency, locale), message)


_AMOUNT = re.compile(r"^\d{1,12}([.,]\d{1,2})?$")


def parse_amount(text: str, currency: str) -> int:
    """``300``, ``300.50`` or ``300,50`` (major units) → minor units; ValueError says what is wrong."""
    raw = (text or "").strip().replace(" ", "").replace("\u00a0", "")
    if not raw:
        raise ValueError("enter an amount")
    if not _AMOUNT.match(raw):
        raise ValueError(f"“{text}” is not an amount in {currency} (e.g. 300 or 300.50)")
    whole, _, frac = raw.replace(",", ".").partition(".")
    d = decimals(currency)
    if d == 0 and frac.strip("0"):
        raise ValueError(f"{currency} has no minor units")
    return int(whole) * 10**d + (int(frac.ljust(d, "0")[:d]) if d else 0)


def amount_input(cents: int | None, currency: str) -> str:
    if cents is None:
        return ""
    d = decimals(currency)
    return str(cents) if d == 0 else f"{cents // 100}.{cents % 100:02d}"


def _local(value: Any, zone: str | None) -> datetime | None:
    """An ISO timestamp (or datetime; naive = UTC) in the time zone ``zone``; None when it cannot be read."""
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        tz = ZoneInfo(zone or "UTC")
    except (ValueError, KeyError):
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(tz)


def when(value: Any, zone: str | None = "UTC") -> str:
    """An ISO timestamp in the account's time zone, e.g. ``6 Dec 2026, 15:04 CET``."""
    if not value:
        return "—"
    local = _local(value, zone)
    return str(value) if local is None else f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


METRICS = {"roas": "Return on ad spend (ROAS)", "cpa": "Cost per acquisition (CPA)", "conversions": "Conversions",
           "revenue": "Revenue"}
OUTCOMES = {"succeeded": "Applied", "failed": "Failed", "conflict": "Conflict (changed elsewhere)",
            "rejected": "Rejected by the platform", "already_applied": "Already applied", "pending": "Pending",
            "expired": "Expired"}
VERDICTS = {"approved": "Approved", "trimmed": "Trimmed", "dropped": "Dropped", "blocked": "Blocked"}


def cadence(hours: int | None) -> str:
    if not hours:
        return "—"
    return "once a day" if hours == 24 else f"every {hours} hours"


def number(value: float | None, places: int = 2, locale: str = "en", *, trim: bool = True) -> str:
    """``1,234.5`` (en) or ``1.234,5`` (de): ``places`` decimals, trailing zeros dropped unless ``trim`` is off."""
    if value is None:
        return "—"
    group, point, _ = LOCALES.get(locale, LOCALES["en"])
    text = f"{float(value):,.{places}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    whole, _, frac = text.partition(".")
    return whole.replace(",", group) + (point + frac if frac else "")


def pct(value: float | None, locale: str = "en", *, signed: bool = False, places: int = 1) -> str:
    """``85.3 %``; ``signed``: ``+12.5 %`` / ``−4 %`` (a deviation)."""
    if value is None:
        return "—"
    text = number(abs(value) if signed else value, places, locale)
    sign = ("+" if value > 0 else "−" if value < 0 else "±") if signed else ""
    return f"{sign}{text}\u00a0%"


def day(value: Any, zone: str | None = "UTC") -> str:
    """An ISO timestamp as its date in the account's time zone, e.g. ``6 Dec 2026``."""
    if not value:
        return "—"
    local = _local(value, zone)
    return str(value) if local is None else f"{local.day} {local:%b %Y}"
