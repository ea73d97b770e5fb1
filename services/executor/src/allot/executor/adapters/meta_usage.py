"""Meta rate-limit usage: parse the usage headers of every Graph response and decide how long to hold back.

Pure (no I/O, no clock: ``now`` is a monotonic number of seconds passed in), so the policy is unit-tested
directly. Header shapes, from Meta's "Rate Limits" (https://developers.facebook.com/docs/graph-api/overview/
rate-limiting) and "Marketing API Rate Limiting" (https://developers.facebook.com/docs/marketing-api/overview/
rate-limiting) pages:

* ``X-Business-Use-Case-Usage``: ``{"<business object id>": [{"type": "ads_management", "call_count": 28,
  "total_cputime": 25, "total_time": 25, "estimated_time_to_regain_access": 0, ...}]}`` — percentages of the
  use case's quota; ``estimated_time_to_regain_access`` is in minutes. For ad-account calls the object id is
  the ad account id (with or without ``act_``).
* ``X-Ad-Account-Usage``: ``{"acc_id_util_pct": 9.67, "reset_time_duration": 100, "ads_api_access_tier":
  "standard_access"}`` — ``reset_time_duration`` in seconds.
* ``X-App-Usage``: ``{"call_count": 28, "total_time": 25, "total_cputime": 25}`` — percentages, app-wide.

Policy: below ``slow_at_pct`` (75 %) calls go at once; from there to 100 % each call to that account is
spaced by a delay growing linearly to ``max_spacing_s``; at 100 % (or after a throttling error) the account
is held until Meta's estimated time to regain access (or the ad-account reset time, or Retry-After).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "APP_KEY",
    "THROTTLE_CODES",
    "AccountUsage",
    "ThrottlePolicy",
    "UsageReading",
    "UsageTracker",
    "is_throttle_code",
    "parse_usage",
]

#: The usage key of app-wide limits (X-App-Usage, error 4): they hold back every account.
APP_KEY = "*app*"

#: Graph's throttling codes: 4 app, 17 user, 32 page, 341 app limit, 613 custom rate limit, and the
#: Marketing API's business-use-case limits 80000–80014 (80004 ads management). Sources: the pages above.
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})


def is_throttle_code(code: int | None) -> bool:
    """True for Graph error codes that mean 'you are rate limited'."""
    return code is not None and code in THROTTLE_CODES


@dataclass(frozen=True, slots=True)
class UsageReading:
    """What one response said about one key (an ad account id, or APP_KEY)."""

    pct: float
    """Highest usage percentage reported (call count, CPU time, total time, account utilisation)."""
    regain_s: float | None = None
    """Seconds until access is regained, when Meta said (BUC minutes × 60, or the account reset time)."""


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _json(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def parse_usage(headers: Mapping[str, str], account_id: str | None) -> dict[str, UsageReading]:
    """Usage per key from one response's headers; unparseable or absent headers give nothing (never raise).

    BUC entries are keyed by their business object id without ``act_``; ``X-Ad-Account-Usage`` belongs to
    ``account_id`` (the account the call was about); ``X-App-Usage`` to :data:`APP_KEY`.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    readings: dict[str, UsageReading] = {}

    def add(key: str, pct: float, regain_s: float | None) -> None:
        old = readings.get(key)
        if old is not None:
            pct = max(pct, old.pct)
            regain_s = max((r for r in (regain_s, old.regain_s) if r is not None), default=None)
        readings[key] = UsageReading(pct, regain_s)

    buc = _json(lowered.get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for key, entries in buc.items():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                pcts = [p for p in (_num(entry.get(f)) for f in ("call_count", "total_cputime", "total_time"))
                        if p is not None]
                minutes = _num(entry.get("estimated_time_to_regain_access"))
                add(str(key).removeprefix("act_"), max(pcts, default=0.0),
                    minutes * 60.0 if minutes is not None and minutes > 0 else None)
    account = _json(lowered.get("x-ad-account-usage"))
    if isinstance(account, dict) and account_id:
        pct = _num(account.get("acc_id_util_pct"))
        reset = _num(account.get("reset_time_duration"))
        if pct is not None:
            add(account_id.removeprefix("act_"), pct, reset if reset and pct >= 100 else None)
    app = _json(lowered.get("x-app-usage"))
    if isinstance(app, dict):
        pcts = [p for p in (_num(app.get(f)) for f in ("call_count", "total_cputime", "total_time")) if p is not None]
        if pcts:
            add(APP_KEY, max(pcts), None)
    return readings


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """When to slow down, by how much, and how long to hold back when Meta gives no time."""

    slow_at_pct: float = 75.0
    max_spacing_s: float = 20.0
    blocked_default_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.slow_at_pct < 100:
            raise ValueError("slow_at_pct must be between 0 and 100 (exclusive)")
        if self.max_spacing_s < 0 or self.blocked_default_s <= 0:
            raise ValueError("max_spacing_s must be >= 0 and blocked_default_s > 0")

    def spacing_s(self, pct: float) -> float:
        """Seconds between calls at ``pct`` usage: 0 below the threshold, then linear up to max_spacing_s."""
        if pct < self.slow_at_pct:
            return 0.0
        share = min(1.0, (pct - self.slow_at_pct) / (100.0 - self.slow_at_pct))
        return share * self.max_spacing_s


@dataclass(slots=True)
class AccountUsage:
    """What we last heard about one key, in monotonic seconds."""

    pct: float = 0.0
    last_call_at: float | None = None
    blocked_until: float = 0.0


@dataclass
class UsageTracker:
    """Per-account usage state and the wait before the next call (pure: every method takes ``now``)."""

    policy: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    accounts: dict[str, AccountUsage] = field(default_factory=dict)

    def _get(self, key: str) -> AccountUsage:
        return self.accounts.setdefault(key, AccountUsage())

    def wait_s(self, account_id: str, now: float) -> float:
        """Seconds to wait before calling Graph about ``account_id`` (0: go now). Considers app-wide usage too."""
        waits = [0.0]
        for key in (account_id.removeprefix("act_"), APP_KEY):
            state = self.accounts.get(key)
            if state is None:
                continue
            waits.append(state.blocked_until - now)
            spacing = self.policy.spacing_s(state.pct)
            if spacing and state.last_call_at is not None:
                waits.append(state.last_call_at + spacing - now)
        return max(waits)

    def record_call(self, account_id: str, now: float) -> None:
        """A call about ``account_id`` is going out now (spacing counts from here)."""
        self._get(account_id.removeprefix("act_")).last_call_at = now
        if APP_KEY in self.accounts:
            self.accounts[APP_KEY].last_call_at = now

    def observe(self, readings: Mapping[str, UsageReading], now: float) -> None:
        """Take the usage one response reported; at 100 % hold the key until access is regained."""
        for key, reading in readings.items():
            state = self._get(key)
            state.pct = reading.pct
            if reading.pct >= 100 or reading.regain_s:
                hold = reading.regain_s if reading.regain_s else self.policy.blocked_default_s
                state.blocked_until = max(state.blocked_until, now + hold)

    def throttled(self, account_id: str, now: float, *, regain_s: float | None, app_wide: bool = False) -> float:
        """Meta refused a call with a throttling code: hold the account (or the whole app) and say for how long."""
        hold = regain_s if regain_s and regain_s > 0 else self.policy.blocked_default_s
        state = self._get(APP_KEY if app_wide else account_id.removeprefix("act_"))
        state.pct = max(state.pct, 100.0)
        state.blocked_until = max(state.blocked_until, now + hold)
        return hold
