"""Meta's usage headers → how long to wait before the next call to an account (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Graph error codes that mean "throttled, wait" (Graph API "Rate Limiting" and Marketing API "Rate Limiting"):
#: 4 app, 17 user, 32 page, 613 calls, 80000-80014 business use cases (80000 ads_insights, 80004 ads_management).
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})


@dataclass(frozen=True)
class Usage:
    """The highest utilisation percentage any header reports, and the wait Meta asks for (seconds)."""

    pct: float = 0.0
    regain_s: float = 0.0


@dataclass(frozen=True)
class PacePolicy:
    """Start slowing at ``slow_at`` %, reach ``max_delay_s`` between calls at 100 %."""

    slow_at: float = 75.0
    max_delay_s: float = 60.0
    throttled_default_s: float = 60.0


def _json(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def parse_usage(headers: Mapping[str, str]) -> Usage:
    """Read x-business-use-case-usage, x-ad-account-usage and x-fb-ads-insights-throttle (missing or bad → 0)."""
    pct = regain = 0.0
    buc = _json(headers.get("x-business-use-case-usage"))
    if isinstance(buc, dict):
        for entries in buc.values():
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict):
                    pct = max(pct, *(_num(e.get(k)) for k in ("call_count", "total_cputime", "total_time")))
                    regain = max(regain, _num(e.get("estimated_time_to_regain_access")) * 60)  # minutes
    acc = _json(headers.get("x-ad-account-usage"))
    if isinstance(acc, dict):
        pct = max(pct, _num(acc.get("acc_id_util_pct")))
        if _num(acc.get("acc_id_util_pct")) >= 100:
            regain = max(regain, _num(acc.get("reset_time_duration")))  # seconds
    ins = _json(headers.get("x-fb-ads-insights-throttle"))
    if isinstance(ins, dict):
        pct = max(pct, _num(ins.get("app_id_util_pct")), _num(ins.get("acc_id_util_pct")))
    app = _json(headers.get("x-app-usage"))
    if isinstance(app, dict):
        pct = max(pct, *(_num(app.get(k)) for k in ("call_count", "total_cputime", "total_time")))
    return Usage(pct, regain)


def delay_before_next(usage: Usage, policy: PacePolicy = PacePolicy()) -> float:
    """Seconds to wait before the next call: 0 below ``slow_at``, rising linearly to ``max_delay_s`` at 100 %,
    and at least what Meta asked for (``estimated_time_to_regain_access``)."""
    ramp = 0.0
    if usage.pct >= policy.slow_at:
        span = max(100.0 - policy.slow_at, 1e-9)
        ramp = policy.max_delay_s * min(1.0, (usage.pct - policy.slow_at) / span)
    return max(ramp, usage.regain_s)


def throttled_wait(code: int | None, usage: Usage, policy: PacePolicy = PacePolicy()) -> float | None:
    """For a Graph error: seconds to wait before retrying when it is a throttling error, else None."""
    if code not in THROTTLE_CODES:
        return None
    return usage.regain_s if usage.regain_s > 0 else policy.throttled_default_s
