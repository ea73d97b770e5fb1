"""The individual guardrail checks: pure functions that return a :class:`Block` or None.

Each check looks at the whole change set and blocks it whole, naming the first offending entity,
account or platform and the numbers; none of them trims (trimming is arbitration's job).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from allot.contracts.payloads import AllocationRequested, BudgetAction
from allot.guardrails.domain.decision import Detail
from allot.guardrails.domain.facts import LedgerFacts
from allot.guardrails.domain.money import (
    UnknownCurrency,
    change_pct,
    min_budget_minor,
    minor_unit_offset,
    pct2,
    to_eur_cents,
)
from allot.guardrails.domain.settings import WorkspaceLimits


@dataclass(frozen=True)
class Block:
    """Why a change set is refused: the check's name, a human reason and the numbers behind it."""

    check: str
    reason: str
    details: dict[str, Detail] = field(default_factory=dict)
    retry_after_s: int | None = None


def _listed(values: Iterable[str]) -> str:
    unique = sorted(set(values))
    return ", ".join(unique[:5]) + (f" (+{len(unique) - 5} more)" if len(unique) > 5 else "")


# ------------------------------------------------------------------ stops and scope


def check_kill_switch(request: AllocationRequested, limits: WorkspaceLimits) -> Block | None:
    """Block every change set while the workspace kill switch is on, then any touching a stopped ad account.

    The kill switch stops all actions, pauses and manual/undo ones included: it means "Allot must not
    call the platform" (runaway automation, compromised credentials, platform incident); people can
    still pause in the platform's own UI.
    """
    if limits.kill_switch:
        return Block(
            "kill_switch",
            "the workspace kill switch is on: no action is executed",
            {"scope": "workspace", "actions": len(request.actions)},
        )
    killed = [a.ad_account_id for a in request.actions if a.ad_account_id in limits.killed_ad_accounts]
    if killed:
        return Block(
            "kill_switch",
            f"ad account {_listed(killed)} is stopped by its kill switch",
            {"scope": "ad_account", "ad_account_id": min(killed), "ad_accounts": _listed(killed),
             "actions": len(killed)},
        )
    return None


def check_platform_whitelist(request: AllocationRequested, limits: WorkspaceLimits) -> Block | None:
    """Block a change set touching a platform outside the workspace's platform whitelist (None = all)."""
    if limits.platform_whitelist is None:
        return None
    outside = [a.platform for a in request.actions if a.platform not in limits.platform_whitelist]
    if not outside:
        return None
    return Block(
        "platform_whitelist",
        f"platform {_listed(outside)} is not in the workspace's platform whitelist",
        {"platform": min(outside), "allowed": _listed(list(limits.platform_whitelist)) or "(none)"},
    )


def check_account_whitelist(request: AllocationRequested, limits: WorkspaceLimits) -> Block | None:
    """Block a change set touching an ad account outside the workspace's account whitelist (None = all)."""
    if limits.account_whitelist is None:
        return None
    outside = [a.ad_account_id for a in request.actions if a.ad_account_id not in limits.account_whitelist]
    if not outside:
        return None
    return Block(
        "account_whitelist",
        f"ad account {_listed(outside)} is not in the workspace's account whitelist",
        {"ad_account_id": min(outside), "ad_accounts": _listed(outside), "actions": len(outside)},
    )


def check_protected(request: AllocationRequested, limits: WorkspaceLimits) -> Block | None:
    """Block a change set with any action (pauses included) on a protected entity."""
    hit = [a for a in request.actions if a.entity_id in limits.protected_entities]
    if not hit:
        return None
    first = hit[0]
    return Block(
        "protected_entity",
        f"{first.entity_type} {first.entity_id} is protected: Allot never changes it"
        + (f" ({len(hit)} protected entities in the change set)" if len(hit) > 1 else ""),
        {"entity_id": first.entity_id, "entity_type": first.entity_type,
         "entities": _listed(a.entity_id for a in hit)},
    )


# ------------------------------------------------------------------ rate limit


def check_manual_rate_limit(
    request: AllocationRequested, limits: WorkspaceLimits, facts: LedgerFacts, *, now: datetime
) -> Block | None:
    """Block a manual change set when ``count`` earlier ones of the same source_id fall in the window.

    The window is half-open, (now − window_s, now]: a request exactly ``window_s`` seconds old no longer
    counts. ``retry_after_s`` is the whole seconds (rounded up, at least 1) until a slot frees.
    """
    if not request.manual:
        return None
    rate = limits.manual_rate_limit
    window = timedelta(seconds=rate.window_s)
    recent = sorted(
        r.at
        for r in facts.recent_manual_requests
        if r.source == request.source and r.source_id == request.source_id and r.at > now - window
    )
    if len(recent) < rate.count:
        return None
    frees_at = recent[len(recent) - rate.count] + window
    retry_after = max(1, math.ceil((frees_at - now).total_seconds()))
    return Block(
        "rate_limited",
        f"manual change sets of {request.source} {request.source_id} are limited to {rate.count} per "
        f"{rate.window_s} s; retry in {retry_after} s",
        {"limit": rate.count, "window_s": rate.window_s, "recent": len(recent), "retry_after_s": retry_after},
        retry_after_s=retry_after,
    )


# ------------------------------------------------------------------ per-action validity


def check_request_shape(request: AllocationRequested) -> Block | None:
    """Block a change set that names the same entity twice (its outcome would depend on order), or whose
    currency has no unit table on its platform (``currency_unknown``: its amounts cannot be read, so no
    minimum or exposure could be checked; never guessed)."""
    counts = Counter(a.entity_id for a in request.actions)
    repeated = sorted(e for e, n in counts.items() if n > 1)
    if repeated:
        return Block(
            "invalid_request",
            f"entity {_listed(repeated)} appears more than once in the change set",
            {"entity_id": repeated[0]},
        )
    for action in request.actions:
        try:
            minor_unit_offset(action.platform, action.currency)
        except UnknownCurrency as exc:
            return Block(
                "currency_unknown",
                f"{action.entity_type} {action.entity_id}: {exc}",
                {"entity_id": action.entity_id, "platform": action.platform, "currency": action.currency},
            )
    return None


def check_budget_minimums(request: AllocationRequested) -> Block | None:
    """Block a change set with a set_budget below the platform's minimum daily budget for that level, in
    the action's currency and the platform's units of it (``min_budget_minor``: JPY 300, HUF 700 on Meta)."""
    for action in request.actions:
        if action.action_type != "set_budget" or action.to_cents is None:
            continue
        try:
            minimum = min_budget_minor(action.platform, action.entity_type, action.currency)
        except UnknownCurrency as exc:
            return Block(
                "currency_unknown",
                f"{action.entity_type} {action.entity_id}: {exc}",
                {"entity_id": action.entity_id, "platform": action.platform, "currency": action.currency},
            )
        if action.to_cents < minimum:
            return Block(
                "budget_minimum",
                f"{action.entity_type} {action.entity_id}: {action.to_cents} {action.currency} minor units is below "
                f"the {action.platform} minimum daily budget of {minimum}",
                {"entity_id": action.entity_id, "platform": action.platform, "to_cents": action.to_cents,
                 "minimum_cents": minimum, "currency": action.currency},
            )
    return None


def check_max_change(request: AllocationRequested, limits: WorkspaceLimits) -> Block | None:
    """Block a change set in which one set_budget moves a budget by more than ``max_change_pct`` (inclusive).

    Blocked rather than trimmed: the limit is the learning-phase hard limit (seed 001), requesters know
    it, and trimming one member of a pool's zero-sum reallocation would silently unbalance it. Undo is
    exempt (it restores a state that was itself approved; +25 % undoes −20 %); the net-change window
    still applies to it. A change from a zero budget has no percentage and is blocked.
    """
    if request.source == "undo":
        return None
    for action in request.actions:
        if action.action_type != "set_budget" or action.from_cents is None or action.to_cents is None:
            continue
        if action.from_cents == 0:
            if action.to_cents == 0:
                continue
            return Block(
                "max_change",
                f"{action.entity_type} {action.entity_id}: a change from a zero budget has no percentage "
                f"and exceeds the {limits.max_change_pct}% single-change limit",
                {"entity_id": action.entity_id, "from_cents": 0, "to_cents": action.to_cents,
                 "max_change_pct": str(limits.max_change_pct)},
            )
        pct = change_pct(action.from_cents, action.to_cents)
        if pct > limits.max_change_pct:
            return Block(
                "max_change",
                f"{action.entity_type} {action.entity_id}: {action.from_cents} → {action.to_cents} is a "
                f"{pct2(pct)}% change, above the {limits.max_change_pct}% single-change limit",
                {"entity_id": action.entity_id, "from_cents": action.from_cents, "to_cents": action.to_cents,
                 "change_pct": pct2(pct), "max_change_pct": str(limits.max_change_pct)},
            )
    return None


# ------------------------------------------------------------------ spend exposure and caps


@dataclass(frozen=True)
class Exposure:
    """Worst-case EUR exposure a change set adds, or the reason it cannot be computed."""

    eur_cents: int = 0
    pool_id: str | None = None
    notes: tuple[str, ...] = ()
    block: Block | None = None
    basis: str = "actions"


def _action_budget_increase(action: BudgetAction) -> int | None:
    """Minor units of daily budget an action starts spending; None when it cannot be known."""
    if action.action_type == "pause":
        return 0
    if action.action_type == "set_budget":
        # The contract guarantees both fields on set_budget.
        return max(0, (action.to_cents or 0) - (action.from_cents or 0))
    known = action.to_cents if action.to_cents is not None else action.from_cents
    if action.action_type == "activate":
        return known
    return known or 0  # relaunch: a new ad under an existing budget unless a budget is given


def compute_exposure(
    request: AllocationRequested,
    actions: tuple[BudgetAction, ...],
    limits: WorkspaceLimits,
    facts: LedgerFacts,
) -> Exposure:
    """Worst-case exposure of the (approved) actions in EUR cents.

    A pool allocation counts the pool's daily budget × the highest overdelivery factor among its
    actions' platforms, minus what that pool already counted today (so it counts once per UTC day).
    Any other change set counts, per action, the budget increase (decreases count 0, pauses 0,
    activations their whole budget) × the platform's overdelivery factor, converted and rounded
    half-up to the cent per action. A missing FX rate or an activation without a budget blocks when a
    cap is configured; without caps it is counted as 0 with a note.
    """
    capped = limits.daily_cap_eur_cents is not None or limits.monthly_cap_eur_cents is not None
    if request.source == "pool" and request.pool_daily_budget_cents is not None:
        currencies = {a.currency for a in actions}
        currency = request.currency or (currencies.pop() if len(currencies) == 1 else None)
        if currency is None:
            return Exposure(block=Block(
                "invalid_request",
                "pool_daily_budget_cents has no currency and the actions use several",
                {"currencies": _listed([a.currency for a in actions])},
            ))
        factor = max(limits.overdelivery_factor(a.platform) for a in actions)
        rate = limits.rate_to_eur(currency)
        if rate is None:
            return _missing_rate(currency, capped, pool_id=request.source_id)
        # The pool budget is in its members' platform units; members whose platforms count the currency
        # differently (Meta HUF vs ISO HUF) leave it ambiguous, so it is refused rather than read either way.
        units = {_offset_or_none(a.platform, currency) for a in actions}
        if len(units) != 1 or None in units:
            return Exposure(block=Block(
                "currency_unknown",
                f"pool {request.source_id}: pool_daily_budget_cents in {currency} cannot be read on "
                f"{_listed(a.platform for a in actions)} (no single unit for {currency} across them)",
                {"currency": currency, "platforms": _listed(a.platform for a in actions)},
            ))
        platform = next(a.platform for a in actions)
        gross = to_eur_cents(request.pool_daily_budget_cents, currency, rate, factor, platform=platform)
        counted = max(0, gross - facts.pool_counted_today_eur_cents)
        already = (
            (f"pool {request.source_id}: {facts.pool_counted_today_eur_cents} EUR cents already counted today",)
            if facts.pool_counted_today_eur_cents
            else ()
        )
        return Exposure(counted, pool_id=request.source_id, notes=already, basis="pool_daily_budget")
    total = 0
    notes: list[str] = []
    for action in actions:
        increase = _action_budget_increase(action)
        if increase is None:
            if capped:
                return Exposure(block=Block(
                    "exposure_unknown",
                    f"{action.entity_type} {action.entity_id}: activation without a budget, so its worst-case "
                    "spend cannot be checked against the caps",
                    {"entity_id": action.entity_id},
                ))
            notes.append(f"{action.entity_type} {action.entity_id}: activation without a budget, exposure not counted")
            continue
        if increase == 0:
            continue
        rate = limits.rate_to_eur(action.currency)
        if rate is None:
            if capped:
                return _missing_rate(action.currency, capped)
            notes.append(f"no FX rate for {action.currency}: exposure of {action.entity_id} not counted")
            continue
        total += to_eur_cents(increase, action.currency, rate, limits.overdelivery_factor(action.platform),
                              platform=action.platform)
    return Exposure(total, notes=tuple(notes))


def _offset_or_none(platform: str, currency: str) -> int | None:
    try:
        return minor_unit_offset(platform, currency)
    except UnknownCurrency:
        return None


def _missing_rate(currency: str, capped: bool, pool_id: str | None = None) -> Exposure:
    if capped:
        return Exposure(block=Block(
            "fx_rate_missing",
            f"no FX rate from {currency} to EUR is configured, so the spend caps cannot be checked",
            {"currency": currency},
        ))
    return Exposure(0, pool_id=pool_id, notes=(f"no FX rate for {currency}: exposure not counted",))


def check_caps(exposure_eur_cents: int, limits: WorkspaceLimits, facts: LedgerFacts) -> Block | None:
    """Block when today's or this month's exposure plus the new exposure exceeds its cap (equal passes).

    A change set adding no exposure (pauses, decreases) is never blocked, even when a cap was lowered
    below what is already counted.
    """
    if exposure_eur_cents <= 0:
        return None
    for name, cap, counted in (
        ("daily_cap", limits.daily_cap_eur_cents, facts.today_exposure_eur_cents),
        ("monthly_cap", limits.monthly_cap_eur_cents, facts.month_exposure_eur_cents),
    ):
        if cap is None:
            continue
        after = counted + exposure_eur_cents
        if after > cap:
            period = "today" if name == "daily_cap" else "this month"
            return Block(
                name,
                f"worst-case exposure {period} would be {after} EUR cents ({counted} counted + {exposure_eur_cents} "
                f"new), above the cap of {cap} by {after - cap}",
                {"counted_eur_cents": counted, "new_exposure_eur_cents": exposure_eur_cents,
                 "after_eur_cents": after, "cap_eur_cents": cap, "over_by_eur_cents": after - cap},
            )
    return None
