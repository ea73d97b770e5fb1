"""Plain language for what the rules and pacing APIs return: a rule's scope, conditions, actions, schedule and
protections, its executions (why an entity was skipped, what was done), and a pacing plan's states, proposals
and refusals. Pure functions over the APIs' JSON; amounts in the account's currency with the user's locale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from allot.console import formatting as fmt

# ---------------------------------------------------------------- rules: metrics and conditions

METRIC_LABELS = {
    "spend": "Spend", "impressions": "Impressions", "clicks": "Clicks", "reach": "Reach",
    "conversions": "Conversions", "revenue": "Revenue", "ctr": "Click-through rate (CTR)",
    "cpc": "Cost per click (CPC)", "cpm": "Cost per 1,000 impressions (CPM)", "cpa": "Cost per acquisition (CPA)",
    "roas": "Return on ad spend (ROAS)", "frequency": "Frequency", "conversion_rate": "Conversion rate",
    "aov": "Average order value", "profit": "Profit", "roi": "Return on investment (ROI)",
    "avg_daily_spend": "Average daily spend", "daily_budget": "Daily budget", "budget_spent_pct": "Budget spent",
    "link_clicks": "Link clicks", "link_ctr": "Link click-through rate", "cost_per_link_click": "Cost per link click",
    "landing_page_views": "Landing page views", "cost_per_landing_page_view": "Cost per landing page view",
    "add_to_cart": "Adds to cart", "cost_per_add_to_cart": "Cost per add to cart",
    "initiate_checkout": "Checkouts initiated", "cost_per_initiate_checkout": "Cost per checkout initiated",
    "leads": "Leads", "cost_per_lead": "Cost per lead", "thruplays": "ThruPlays",
    "cost_per_thruplay": "Cost per ThruPlay",
    "hook_rate": "Hook rate", "hold_rate": "Hold rate",
}
#: Metrics in minor units of the account's currency (the rules API's "cents"; per-unit costs are fractional).
MONEY_METRICS = frozenset({
    "spend", "revenue", "cpc", "cpm", "cpa", "aov", "profit", "avg_daily_spend", "daily_budget",
    "cost_per_link_click", "cost_per_landing_page_view", "cost_per_add_to_cart", "cost_per_initiate_checkout",
    "cost_per_lead", "cost_per_thruplay"})
PERCENT_METRICS = frozenset({"ctr", "conversion_rate", "roi", "budget_spent_pct", "link_ctr", "hook_rate", "hold_rate"})
RATIO_METRICS = frozenset({"roas", "frequency"})
RANGES = {"today": "today", "yesterday": "yesterday", "last_3d": "over the last 3 days",
          "last_7d": "over the last 7 days", "last_14d": "over the last 14 days", "last_30d": "over the last 30 days"}
OPERATORS = {"gt": "is above", "gte": "is at least", "lt": "is below", "lte": "is at most", "eq": "is exactly",
             "neq": "is not", "between": "is between"}
LEVELS = {"campaign": "campaigns", "adset": "ad sets", "ad": "ads"}
WEEKDAYS = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}

SKIP_REASONS = {
    "conditions_not_met": "conditions not met",
    "metric_unavailable": "a metric could not be computed",
    "metric_not_supported_on_platform": "a metric this platform does not report",
    "action_not_supported_on_platform": "an action this platform does not support",
    "pending_action": "an earlier change is still in flight",
    "failure_backoff": "waiting after recent failures",
    "cooldown": "in its cooldown",
    "max_executions_per_day": "already changed the most times allowed today",
    "circuit_breaker": "the circuit breaker tripped",
    "no_daily_budget": "has no daily budget",
    "at_daily_cap": "already at the rule's daily budget cap",
    "at_platform_minimum": "already at the platform's minimum budget",
    "no_budget_change": "the change would be zero after the limits",
    "already_in_status": "already in that status",
    "unknown_currency": "no minimum budget is known for its currency",
    "outside_schedule": "outside the rule's time windows",
}
CLAMPS = {"budget_change_limit": "limited by the rule's change limit", "budget_daily_cap": "capped at the daily cap",
          "platform_minimum": "held at the platform's minimum"}
TRIGGERS = {"schedule": "on schedule", "manual": "Evaluate now", "trigger": "new metrics arrived"}
RESULTS = {"requested": "Changes requested", "notified": "Notified (nothing changed)", "no_match": "Nothing to do",
           "auto_paused": "Paused itself (circuit breaker)"}
ENTITY_OUTCOMES = {"notified": "Notified", "pending": "Waiting for the executor", "succeeded": "Applied",
                   "blocked": "Blocked by the guardrails", "failed": "Failed", "none": "No action"}
ACTION_OUTCOMES = {**fmt.OUTCOMES, "blocked": "Blocked by the guardrails", "observed": "Observed only (no change)"}


def metric_value(metric: str, value: Any, currency: str | None, locale: str = "en") -> str:
    """A metric's value in its unit: money in the account's currency, percentages, ratios, counts."""
    if value is None:
        return "not computable"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if metric in MONEY_METRICS:
        if currency:
            return fmt.money(round(value), currency, locale)
        return f"{fmt.number(value / 100, 2, locale, trim=False)} (account currency)"
    if metric in PERCENT_METRICS:
        return fmt.pct(value, locale, places=2)
    if metric in RATIO_METRICS:
        return fmt.number(value, 2, locale)
    return fmt.number(value, 0, locale)


def threshold(metric: str, value: Any, targets: Mapping[str, float], currency: str | None, locale: str = "en") -> str:
    """A condition's value: a number in the metric's unit, or a multiple of one of the rule's targets."""
    if isinstance(value, Mapping) and "target" in value:
        name = str(value["target"])
        multiplier = float(value.get("multiplier") or 1.0)
        label = f"target {name.removeprefix('target_').upper()}"
        base = targets.get(name)
        resolved = f" = {metric_value(metric, base * multiplier, currency, locale)}" if base is not None else ""
        if multiplier == 1.0:
            return f"the {label}" + (f" ({metric_value(metric, base, currency, locale)})" if base is not None else "")
        return f"{fmt.number(multiplier, 2, locale)} × the {label}{resolved}"
    return metric_value(metric, value, currency, locale)


def condition_text(c: Mapping[str, Any], targets: Mapping[str, float], currency: str | None, locale: str = "en") -> str:
    """``Return on ad spend (ROAS) over the last 7 days is above 3.1``."""
    metric = str(c.get("metric"))
    when = RANGES.get(str(c.get("time_range")), str(c.get("time_range")))
    op = str(c.get("operator"))
    value = c.get("value")
    if op == "between" and isinstance(value, (list, tuple)) and len(value) == 2:
        shown = (f"{threshold(metric, value[0], targets, currency, locale)} and "
                 f"{threshold(metric, value[1], targets, currency, locale)}")
    else:
        shown = threshold(metric, value, targets, currency, locale)
    return f"{METRIC_LABELS.get(metric, metric)} {when} {OPERATORS.get(op, op)} {shown}"


def condition_tree(group: Any, targets: Mapping[str, float], currency: str | None,
                   locale: str = "en") -> dict[str, Any]:
    """The (nested) condition group as ``{"logic", "heading", "items": [{"text"} | group]}``; a plain list is AND."""
    if isinstance(group, list):
        group = {"logic": "and", "conditions": group}
    logic = str(group.get("logic") or "and")
    items: list[dict[str, Any]] = []
    for node in group.get("conditions") or []:
        if isinstance(node, Mapping) and "conditions" in node:
            items.append(condition_tree(node, targets, currency, locale))
        else:
            items.append({"text": condition_text(node, targets, currency, locale)})
    heading = "Any of these (OR)" if logic == "or" else "All of these (AND)"
    return {"logic": logic, "heading": heading, "items": items}


def action_text(a: Mapping[str, Any], locale: str = "en") -> str:
    kind = a.get("type")
    if kind == "increase_budget_pct":
        return f"Raise its daily budget by {fmt.pct(a.get('pct'), locale, places=2)}"
    if kind == "decrease_budget_pct":
        return f"Lower its daily budget by {fmt.pct(a.get('pct'), locale, places=2)}"
    if kind == "pause":
        return "Pause it"
    if kind == "activate":
        return "Activate it"
    if kind == "relaunch":
        creative = a.get("creative_id")
        return "Relaunch the ad with " + (f"creative {creative}" if creative else "a new creative")
    if kind == "notify_only":
        return "Only notify (change nothing on the platform)"
    return str(kind).replace("_", " ")


def scope_text(scope: Mapping[str, Any], accounts: Mapping[str, str]) -> dict[str, Any]:
    """``{"level": "ad sets", "accounts": [names], "filters": [...]}`` (account names where known)."""
    filters = []
    f = scope.get("entity_filter") or {}
    if f.get("name_contains"):
        filters.append(f"whose name contains “{f['name_contains']}”")
    if f.get("status_in"):
        filters.append("whose status is " + " or ".join(str(s) for s in f["status_in"]))
    ids = [str(i) for i in scope.get("ad_account_ids") or []]
    return {"level": LEVELS.get(str(scope.get("entity_level")), str(scope.get("entity_level"))),
            "accounts": [accounts.get(i) or i for i in ids], "filters": filters}


def minutes_text(minutes: int | None) -> str:
    if minutes is None:
        return "—"
    if minutes and minutes % 1440 == 0:
        days = minutes // 1440
        return "a day" if days == 1 else f"{days} days"
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return "an hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def schedule_mode(schedule: Mapping[str, Any]) -> str:
    """schedule | trigger | cron (a ``cron`` without a mode is cron, as the rules model reads it) or as given."""
    if schedule.get("cron") and not schedule.get("mode"):
        return "cron"
    return str(schedule.get("mode") or "schedule")


def schedule_short(schedule: Mapping[str, Any] | None) -> str:
    """The rules list's schedule column: ``every N min``, ``on new metrics`` or ``cron: <expr>``."""
    if not schedule:
        return "every 15 min"
    mode = schedule_mode(schedule)
    if mode == "cron":
        return f"cron: {schedule.get('cron')}"
    if mode == "trigger":
        return "on new metrics"
    if mode == "schedule":
        return f"every {schedule.get('interval_minutes') or 15} min"
    return mode


def schedule_text(schedule: Mapping[str, Any] | None) -> list[str]:
    if not schedule:
        return ["Every 15 minutes"]
    lines = []
    mode = schedule_mode(schedule)
    if mode == "cron":
        lines.append(f"At the times of the cron expression “{schedule.get('cron')}” (each ad account's own time "
                     "zone)")
    elif mode == "trigger":
        lines.append("As soon as new metrics arrive for an entity")
    elif mode == "schedule":
        every = schedule.get("interval_minutes") or 15
        lines.append({1440: "Once a day", 60: "Every hour"}.get(every) or f"Every {minutes_text(every)}")
    else:
        lines.append(f"{str(mode).capitalize()}: " + ", ".join(f"{k} {v}" for k, v in schedule.items()
                                                              if k not in ("mode", "dayparts")))
    for d in schedule.get("dayparts") or []:
        days = ", ".join(WEEKDAYS.get(x, x) for x in d.get("days") or [])
        lines.append(f"Only {days}, {d.get('start')}–{d.get('end')} (each ad account's own time zone)")
    return lines


def protections_text(p: Mapping[str, Any] | None, currency: str | None, locale: str = "en") -> list[str]:
    p = p or {}
    out = []
    if p.get("cooldown_minutes") is not None:
        out.append("No cooldown between changes to the same entity" if not p["cooldown_minutes"]
                   else f"Waits {minutes_text(p['cooldown_minutes'])} before changing the same entity again")
    if p.get("max_executions_per_day") is not None:
        n = p["max_executions_per_day"]
        out.append(f"Changes one entity at most {n} time{'s' if n != 1 else ''} a day")
    if p.get("budget_change_limit_pct") is not None:
        out.append(f"Moves a budget by at most {fmt.pct(p['budget_change_limit_pct'], locale)} at a time")
    if p.get("budget_daily_cap_cents"):
        cap = metric_value("daily_budget", p["budget_daily_cap_cents"], currency, locale)
        out.append(f"Never raises a daily budget above {cap}")
    if "change_pool_member_budgets" in p:
        out.append("May change the budgets of budget-pool members" if p["change_pool_member_budgets"]
                   else "Leaves the budgets of budget-pool members to their pool")
    known = {"cooldown_minutes", "max_executions_per_day", "budget_change_limit_pct", "budget_daily_cap_cents",
             "change_pool_member_budgets"}
    out += [f"{k.replace('_', ' ')}: {v}" for k, v in p.items() if k not in known and v not in (None, False)]
    return out


def rule_view(rule: Mapping[str, Any], accounts: Mapping[str, str], currency: str | None,
              locale: str = "en") -> dict[str, Any]:
    """A rule definition (the API's JSON) in plain language: scope, condition tree, targets, actions, schedule and
    protections (account names where known; amounts in ``currency``)."""
    targets = rule.get("targets") or {}
    return {"scope": scope_text(rule.get("scope") or {}, accounts),
            "conditions": condition_tree(rule.get("conditions") or [], targets, currency, locale),
            "actions": [action_text(a, locale) for a in rule.get("actions") or []],
            "schedule": schedule_text(rule.get("schedule")),
            "protections": protections_text(rule.get("protections"), currency, locale),
            "targets": [(f"target {k.removeprefix('target_').upper()}",
                         metric_value(k.removeprefix("target_"), v, currency, locale)) for k, v in targets.items()]}


# ---------------------------------------------------------------- rules: executions


def skip_text(reason: str | None, detail: str | None = None) -> str:
    text = SKIP_REASONS.get(str(reason), str(reason or "skipped").replace("_", " "))
    return f"{text} ({detail})" if detail else text


def change_text(a: Mapping[str, Any], currency: str | None, locale: str = "en") -> str:
    """One planned or sent action: ``daily budget €50.00 → €60.00 (+20 %, limited by …)`` or ``paused → active``."""
    kind = a.get("type") or a.get("action_type")
    cur = a.get("currency") or currency
    if a.get("from_cents") is not None or a.get("to_cents") is not None:
        text = (f"daily budget {metric_value('daily_budget', a.get('from_cents'), cur, locale)} → "
                f"{metric_value('daily_budget', a.get('to_cents'), cur, locale)}")
        notes = []
        if a.get("applied_pct") is not None:
            notes.append(fmt.pct(a["applied_pct"], locale, signed=True))
        notes += [CLAMPS.get(c, str(c)) for c in a.get("clamps") or []]
        return text + (f" ({', '.join(notes)})" if notes else "")
    if a.get("to_status"):
        return f"status {a.get('from_status') or '?'} → {a['to_status']}"
    if kind == "relaunch":
        return "relaunch" + (f" with creative {a['creative_id']}" if a.get("creative_id") else "")
    if kind == "notify_only":
        return "notified"
    return str(kind or "action").replace("_", " ")


def execution_view(x: Mapping[str, Any], names: Mapping[str, str], rule: Mapping[str, Any], currency: str | None,
                   locale: str = "en") -> dict[str, Any]:
    """One fire of a rule, ready to show: counts, skip reasons, and per entity what it saw and did."""
    conditions = rule.get("conditions") or {}
    keys = _condition_keys(conditions)
    entities = []
    for e in x.get("entities") or []:
        planned = [p for p in e.get("planned") or [] if p.get("type") != "notify_only"]
        # a sent action carries its outcome; the planned one its currency, applied % and clamps
        sent = [{**next((p for p in planned if (p.get("from_cents"), p.get("to_cents"), p.get("to_status")) == (
                    a.get("from_cents"), a.get("to_cents"), a.get("to_status"))), {}), **a}
                for a in e.get("actions") or []]
        entities.append({
            "name": names.get(e.get("entity_id")) or e.get("entity_id"),
            "outcome": str(e.get("outcome") or "none"),
            "outcome_text": ENTITY_OUTCOMES.get(str(e.get("outcome")), str(e.get("outcome"))),
            "changes": ([{"text": change_text(a, currency, locale), "outcome": a.get("outcome"),
                          "outcome_text": ACTION_OUTCOMES.get(str(a.get("outcome")), str(a.get("outcome"))),
                          "error": a.get("error")} for a in sent]
                        or [{"text": change_text(p, currency, locale), "outcome": None, "outcome_text": "",
                             "error": None} for p in planned]),
            "skipped_actions": [f"{action_text({'type': s.get('type')}, locale)}: "
                                f"{skip_text(s.get('reason'), s.get('detail'))}"
                                for s in e.get("skipped_actions") or []],
            "snapshot": _snapshot(e.get("snapshot") or {}, keys, currency, locale),
        })
    skipped = [{"name": names.get(s.get("entity_id")) or s.get("entity_id"),
                "why": skip_text(s.get("reason"), s.get("detail"))} for s in x.get("skipped_entities") or []]
    acted = sum(1 for e in x.get("entities") or [] if e.get("actions"))
    return {
        "id": x.get("execution_id"), "at": x.get("started_at") or x.get("slot_start"),
        "trigger": TRIGGERS.get(str(x.get("trigger")), str(x.get("trigger"))),
        "result": str(x.get("result")), "result_text": RESULTS.get(str(x.get("result")), str(x.get("result"))),
        "evaluated": x.get("entities_evaluated") or 0, "matched": x.get("matched") or 0, "acted": acted,
        "actions": x.get("actions_count") or 0, "skipped": x.get("skipped") or 0,
        "skip_counts": [(skip_text(k), n) for k, n in sorted((x.get("skip_counts") or {}).items(),
                                                             key=lambda kv: (-kv[1], kv[0]))],
        "outcome_counts": [(ENTITY_OUTCOMES.get(k, k), n) for k, n in sorted((x.get("outcome_counts") or {}).items())],
        "auto_pause_reason": x.get("auto_pause_reason"), "entities": entities, "skipped_entities": skipped,
        "skipped_shown": len(skipped) < (x.get("skipped") or 0),
    }


def _condition_keys(group: Any) -> list[str]:
    """``metric@time_range`` of every condition, in document order (the keys of a metric snapshot)."""
    nodes = group if isinstance(group, list) else (group.get("conditions") or [])
    keys: list[str] = []
    for node in nodes:
        if isinstance(node, Mapping) and "conditions" in node:
            keys += [k for k in _condition_keys(node) if k not in keys]
        elif isinstance(node, Mapping):
            key = f"{node.get('metric')}@{node.get('time_range')}"
            if key not in keys:
                keys.append(key)
    return keys


def _snapshot(snapshot: Mapping[str, Any], keys: list[str], currency: str | None, locale: str) -> list[tuple[str, str]]:
    ordered = [k for k in keys if k in snapshot] + sorted(k for k in snapshot if k not in keys)
    out = []
    for key in ordered:
        metric, _, when = key.partition("@")
        label = f"{METRIC_LABELS.get(metric, metric)} {RANGES.get(when, when)}".strip()
        out.append((label, metric_value(metric, snapshot[key], currency, locale)))
    return out


# ---------------------------------------------------------------- pacing

PLAN_STATES = {"ACTIVE": "Active", "PACING_HOLD": "On hold (pacing)", "PAUSED": "Paused"}
PROPOSAL_STATUSES = {
    "pending_approval": "Waiting for approval", "needs_budget": "Waiting: the budgets cannot move yet",
    "requested": "Approved: budgets being changed", "rejected": "Rejected",
    "superseded": "Replaced by a newer proposal", "applied": "Applied", "failed": "Failed",
    "conflict": "Conflict (changed elsewhere)"}
OPEN_PROPOSALS = ("pending_approval", "needs_budget")
ALERT_LEVELS = {"warning": "Warning", "critical": "Critical"}
DIRECTIONS = {"underpacing": "spending too slowly", "overpacing": "spending too fast"}
CURVES = {"linear": "evenly over the flight", "front_loaded": "more at the start", "back_loaded": "more at the end",
          "day_of_week": "by weekday weights"}
ROLES = {"source": "gives", "target": "gets"}


def proposal_refusal(status: int, code: str, body: Mapping[str, Any], currency: str | None,
                     locale: str = "en") -> str:
    """Why an approve/reject was refused, in plain words (the 409s explain what changed)."""
    if code == "proposal_superseded":
        current = body.get("current")
        if isinstance(current, Mapping):
            amount = metric_value("spend", current.get("amount_cents"), current.get("currency") or currency, locale)
            return ("Not approved: a newer snapshot replaced this proposal and the amount changed by more than 10 %. "
                    f"The current proposal moves {amount} from {current.get('source_channel')} to "
                    f"{current.get('target_channel')}; review it in the inbox and approve that one if it is right.")
        return ("Not approved: a newer snapshot replaced this proposal and no move is needed between these channels "
                "any more. Nothing changed.")
    if code == "proposal_closed":
        return ("This proposal was already decided (or replaced); only proposals that are waiting can be approved or "
                "rejected. Its current status is shown here.")
    if status == 403:
        return "Your role may look at proposals but not approve or reject them."
    if status == 404:
        return "This proposal is no longer in this plan."
    return fmt.humanize(str(body.get("message") or f"refused ({status})"), currency, locale)
