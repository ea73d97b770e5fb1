"""The new-rule wizard's pure part: five steps of form values (kept as typed, in the session) ↔ the rules API's
``RuleDefinition`` JSON, each step's own checks, and the API's 422 ``field`` paths mapped back to a step and field.

Steps: scope → conditions → actions → schedule → protections, then a review. A draft is
``{"template": name | None, "steps": {step: values}}``; ``values`` hold the strings the user typed (amounts in the
account's currency, e.g. ``12.50``), so going back shows exactly what was entered; :func:`build` turns every step
into API values (money in minor units) and collects the errors per step.

The metric catalogue is the rules model's documented list (``describe.METRIC_LABELS``, the 34 metrics of
``allot.rules.domain.metrics``): the rules API does not expose it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from allot.console import describe
from allot.console import formatting as fmt

STEPS = ("scope", "conditions", "actions", "schedule", "protections")
STEP_TITLES = {"scope": "Scope", "conditions": "Conditions", "actions": "Actions", "schedule": "Schedule",
               "protections": "Protections", "review": "Review"}
META_ONLY = frozenset({
    "link_clicks", "link_ctr", "cost_per_link_click", "landing_page_views", "cost_per_landing_page_view",
    "add_to_cart", "cost_per_add_to_cart", "initiate_checkout", "cost_per_initiate_checkout", "leads",
    "cost_per_lead", "thruplays", "cost_per_thruplay", "hook_rate", "hold_rate"})
TIME_RANGES = ("today", "yesterday", "last_3d", "last_7d", "last_14d", "last_30d")
LEVELS = {"campaign": "Campaigns", "adset": "Ad sets", "ad": "Ads"}
STATUSES = ("active", "paused", "archived", "deleted")
ACTIONS = {"pause": "Pause the entity", "activate": "Activate the entity",
           "increase_budget_pct": "Raise the daily budget by a percentage",
           "decrease_budget_pct": "Lower the daily budget by a percentage",
           "relaunch": "Relaunch the ad with a new creative (Meta only)",
           "notify_only": "Only notify (change nothing)"}
MODES = {"schedule": "Every few minutes", "trigger": "When new metrics arrive", "cron": "At cron times"}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULTS = {"cooldown_minutes": "360", "max_executions_per_day": "3", "budget_change_limit_pct": "20",
            "budget_daily_cap": "", "change_pool_member_budgets": False}
MAX_GROUPS = 10
MAX_ROWS = 50
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_TARGET = re.compile(r"target", re.IGNORECASE)
_NUM = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
#: The rules model's target shorthands: ``target * 1.2``, ``1.2 * target``, ``target_roas * 1.2``.
_TARGET_EXPR = re.compile(
    rf"^(?:(?P<pre>{_NUM})\s*\*\s*)?(?P<target>target(?:_[a-z0-9_]+)?)(?:\s*\*\s*(?P<post>{_NUM}))?$")

Errors = dict[str, str]


# ---------------------------------------------------------------- drafts


def blank_draft() -> dict[str, Any]:
    return {"template": None, "steps": {
        "scope": {"name": "", "accounts": [], "level": "adset", "name_contains": "", "status_in": []},
        "conditions": {"root_logic": "and", "groups": [{"logic": "and", "rows": []}], "targets": []},
        "actions": {"types": [], "increase_budget_pct_pct": "", "decrease_budget_pct_pct": "",
                    "relaunch_creative_id": ""},
        "schedule": {"mode": "schedule", "interval": "15", "cron": "", "dayparts": []},
        "protections": dict(DEFAULTS)}}


def template_draft(t: Mapping[str, Any]) -> dict[str, Any]:
    """A draft from one of ``GET /api/v1/rules/templates`` (amounts shown as in a two-decimal currency)."""
    draft = blank_draft()
    draft["template"] = t.get("name")
    draft["steps"]["scope"]["name"] = str(t.get("name") or "").replace("_", " ").capitalize()
    rows = [_row_of(c) for c in t.get("conditions") or []]
    draft["steps"]["conditions"]["groups"] = [{"logic": "and", "rows": rows}]
    draft["steps"]["conditions"]["targets"] = [{"metric": str(n).removeprefix("target_"), "value": ""}
                                               for n in t.get("required_targets") or []]
    actions = draft["steps"]["actions"]
    for a in t.get("actions") or []:
        actions["types"].append(a["type"])
        if a.get("pct") is not None:
            actions[f"{a['type']}_pct"] = fmt.number(float(a["pct"]), 2)
        if a.get("creative_id"):
            actions["relaunch_creative_id"] = str(a["creative_id"])
    protections = draft["steps"]["protections"]
    for k, v in (t.get("protections") or {}).items():
        if k == "budget_daily_cap_cents":
            protections["budget_daily_cap"] = fmt.amount_input(v, "EUR") if v else ""
        elif k == "change_pool_member_budgets":
            protections[k] = bool(v)
        elif k in protections:
            protections[k] = fmt.number(float(v), 2)
    return draft


def rule_draft(rule: Mapping[str, Any], currency: str = "EUR") -> dict[str, Any] | None:
    """A draft holding an existing rule's definition as the five steps show it (amounts in ``currency``, the
    scope's), or None when its conditions nest deeper than the wizard's groups (a group of groups of conditions)."""
    draft = blank_draft()
    draft["template"] = rule.get("template")
    scope = rule.get("scope") or {}
    flt = scope.get("entity_filter") or {}
    draft["steps"]["scope"] = {"name": str(rule.get("name") or ""), "accounts": list(scope.get("ad_account_ids") or []),
                               "level": str(scope.get("entity_level") or "adset"),
                               "name_contains": str(flt.get("name_contains") or ""),
                               "status_in": list(flt.get("status_in") or [])}
    root = rule.get("conditions") or {"logic": "and", "conditions": []}
    children = root.get("conditions") or []
    if all("conditions" not in c for c in children):  # one group of conditions
        groups = [{"logic": root.get("logic") or "and", "rows": [_row_of(c, currency) for c in children]}]
        root_logic = "and"
    else:  # a group of groups (a lone condition becomes a group of one, which means the same)
        groups = []
        for c in children:
            inner = c.get("conditions") if "conditions" in c else [c]
            if any("conditions" in x for x in inner):
                return None
            groups.append({"logic": c.get("logic") or "and", "rows": [_row_of(x, currency) for x in inner]})
        root_logic = root.get("logic") or "and"
    targets = [{"metric": name.removeprefix("target_"),
                "value": _shown(name.removeprefix("target_"), value, currency)}
               for name, value in (rule.get("targets") or {}).items()]
    draft["steps"]["conditions"] = {"root_logic": root_logic, "groups": groups[:MAX_GROUPS], "targets": targets}
    actions = draft["steps"]["actions"]
    for a in rule.get("actions") or []:
        actions["types"].append(a["type"])
        if a.get("pct") is not None:
            actions[f"{a['type']}_pct"] = fmt.number(float(a["pct"]), 4).replace(",", "")
        if a.get("creative_id"):
            actions["relaunch_creative_id"] = str(a["creative_id"])
    sched = rule.get("schedule") or {}
    draft["steps"]["schedule"] = {
        "mode": str(sched.get("mode") or "schedule"), "interval": str(sched.get("interval_minutes") or 15),
        "cron": str(sched.get("cron") or ""),
        "dayparts": [{"days": list(d.get("days") or []), "start": str(d.get("start") or ""),
                      "end": str(d.get("end") or "")} for d in sched.get("dayparts") or []]}
    prot = rule.get("protections") or {}
    cap = prot.get("budget_daily_cap_cents")
    draft["steps"]["protections"] = {
        "cooldown_minutes": str(prot.get("cooldown_minutes", DEFAULTS["cooldown_minutes"])),
        "max_executions_per_day": str(prot.get("max_executions_per_day", DEFAULTS["max_executions_per_day"])),
        "budget_change_limit_pct": fmt.number(float(prot.get("budget_change_limit_pct") or 20), 4).replace(",", ""),
        "budget_daily_cap": fmt.amount_input(int(cap), currency) if cap else "",
        "change_pool_member_budgets": bool(prot.get("change_pool_member_budgets"))}
    return draft


def _row_of(c: Mapping[str, Any], currency: str = "EUR") -> dict[str, str]:
    metric = str(c.get("metric") or "")
    value = c.get("value")
    low, high = (value[0], value[1]) if isinstance(value, (list, tuple)) and len(value) == 2 else (value, None)
    return {"metric": metric, "operator": str(c.get("operator") or "gt"), "value": _shown(metric, low, currency),
            "value2": _shown(metric, high, currency) if high is not None else "",
            "time_range": str(c.get("time_range") or "")}


def _shown(metric: str, value: Any, currency: str = "EUR") -> str:
    if isinstance(value, Mapping) and "target" in value:
        name = str(value["target"])
        label = "target" if name == f"target_{metric}" else name
        multiplier = float(value.get("multiplier") or 1)
        return label if multiplier == 1 else f"{label} * {fmt.number(multiplier, 4)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if metric in describe.MONEY_METRICS:
            return fmt.amount_input(round(value), currency)
        return fmt.number(float(value), 4).replace(",", "")
    return "" if value is None else str(value)


# ---------------------------------------------------------------- forms → step values (no checks)


def _text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def _list(form: Mapping[str, Any], key: str) -> list[str]:
    value = form.get(key)
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value]) if str(v)]


def read_step(step: str, form: Mapping[str, Any]) -> dict[str, Any]:
    """The step's values as typed (blank condition rows, targets and dayparts dropped)."""
    if step == "scope":
        return {"name": _text(form, "name"), "accounts": _list(form, "account"),
                "level": _text(form, "level") or "adset", "name_contains": _text(form, "name_contains"),
                "status_in": _list(form, "status_in")}
    if step == "conditions":
        groups = []
        for i in range(MAX_GROUPS):
            if f"g{i}_logic" not in form:
                break
            rows = []
            for j in range(MAX_ROWS + 1):
                if f"g{i}_r{j}_metric" not in form:
                    break
                row = {k: _text(form, f"g{i}_r{j}_{k}") for k in ("metric", "operator", "value", "value2",
                                                                  "time_range")}
                if row["metric"]:  # "— none —" removes a row
                    rows.append(row)
            groups.append({"logic": _text(form, f"g{i}_logic") or "and", "rows": rows})
        groups = [g for g in groups if g["rows"]] or [{"logic": groups[0]["logic"] if groups else "and",
                                                       "rows": []}]
        targets = []
        for k in range(20):
            if f"t{k}_metric" not in form:
                break
            metric, value = _text(form, f"t{k}_metric"), _text(form, f"t{k}_value")
            if metric:
                targets.append({"metric": metric, "value": value})
        return {"root_logic": _text(form, "root_logic") or "and", "groups": groups, "targets": targets}
    if step == "actions":
        return {"types": [t for t in _list(form, "action") if t in ACTIONS],
                "increase_budget_pct_pct": _text(form, "increase_budget_pct_pct"),
                "decrease_budget_pct_pct": _text(form, "decrease_budget_pct_pct"),
                "relaunch_creative_id": _text(form, "relaunch_creative_id")}
    if step == "schedule":
        dayparts = []
        for k in range(28):
            if f"d{k}_start" not in form:
                break
            part = {"days": _list(form, f"d{k}_days"), "start": _text(form, f"d{k}_start"),
                    "end": _text(form, f"d{k}_end")}
            if part["days"] or part["start"] or part["end"]:
                dayparts.append(part)
        return {"mode": _text(form, "mode") or "schedule", "interval": _text(form, "interval"),
                "cron": _text(form, "cron"), "dayparts": dayparts}
    if step == "protections":
        return {"cooldown_minutes": _text(form, "cooldown_minutes"),
                "max_executions_per_day": _text(form, "max_executions_per_day"),
                "budget_change_limit_pct": _text(form, "budget_change_limit_pct"),
                "budget_daily_cap": _text(form, "budget_daily_cap"),
                "change_pool_member_budgets": _text(form, "change_pool_member_budgets") == "yes"}
    raise KeyError(step)


# ---------------------------------------------------------------- step values → API values (with checks)


def _number(text: str) -> float:
    raw = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"“{text}” is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"“{text}” is not a number")
    return value


def _integer(text: str, label: str) -> int:
    if not re.fullmatch(r"\d{1,6}", text.strip()):
        raise ValueError(f"{label}: “{text}” is not a whole number" if text else f"{label}: enter a whole number")
    return int(text)


def _money(text: str, currency: str) -> int:
    raw = text.strip()
    negative = raw.startswith(("-", "−"))
    cents = fmt.parse_amount(raw[1:] if negative else raw, currency)
    return -cents if negative else cents


def _threshold(metric: str, text: str, currency: str) -> Any:
    """A condition value: a target expression (sent as typed, the API resolves it) or a number in the metric's
    unit (money → minor units)."""
    if not text:
        raise ValueError("enter a value")
    if _TARGET.search(text):
        expr = text.replace("×", "*").lower().strip()
        m = _TARGET_EXPR.match(expr)
        if m is None or (m["pre"] and m["post"]):
            return expr  # as typed: the rules API says what is wrong with it
        name = m["target"] if m["target"] != "target" else f"target_{metric}"
        return {"target": name, "multiplier": float(m["pre"] or m["post"] or 1)}
    if metric in describe.MONEY_METRICS:
        try:
            return _money(text, currency)
        except ValueError:
            raise ValueError(f"“{text}” is not an amount in {currency} (e.g. 12.50) or a target "
                             "(e.g. target * 1.2)") from None
    try:
        return _number(text)
    except ValueError:
        raise ValueError(f"“{text}” is not a number (e.g. 2.5) or a target (e.g. target * 1.2)") from None


def build_step(step: str, v: Mapping[str, Any], ctx: Mapping[str, Any]) -> tuple[dict[str, Any], Errors]:
    """The step's part of the definition and its errors (keyed by form field name, each naming the field).
    ``ctx``: ``accounts`` (id → {name, platform, currency}) and ``currency`` (the scope's)."""
    errors: Errors = {}
    currency = str(ctx.get("currency") or "EUR")
    if step == "scope":
        accounts: Mapping[str, Any] = ctx.get("accounts") or {}
        if not v["name"]:
            errors["name"] = "Name: give the rule a name"
        elif len(v["name"]) > 200:
            errors["name"] = "Name: at most 200 characters"
        if not v["accounts"]:
            errors["account"] = "Ad accounts: pick at least one ad account"
        elif accounts and any(a not in accounts for a in v["accounts"]):
            errors["account"] = "Ad accounts: pick ad accounts the platform reported"
        if v["level"] not in LEVELS:
            errors["level"] = "Entity level: choose campaigns, ad sets or ads"
        entity_filter: dict[str, Any] = {}
        if v["name_contains"]:
            entity_filter["name_contains"] = v["name_contains"]
        if v["status_in"]:
            entity_filter["status_in"] = [x for x in v["status_in"] if x in STATUSES]
        part = {"name": v["name"], "scope": {"ad_account_ids": list(v["accounts"]), "entity_level": v["level"],
                                             **({"entity_filter": entity_filter} if entity_filter else {})}}
        return part, errors
    if step == "conditions":
        groups = []
        for i, g in enumerate(v["groups"]):
            nodes = []
            for j, row in enumerate(g["rows"]):
                key, where = f"g{i}_r{j}", f"Group {i + 1}, condition {j + 1}"
                metric = row["metric"]
                if metric not in describe.METRIC_LABELS:
                    errors[f"{key}_metric"] = f"{where}, metric: choose a metric from the list"
                if row["operator"] not in describe.OPERATORS:
                    errors[f"{key}_operator"] = f"{where}, operator: choose a comparison"
                if row["time_range"] not in TIME_RANGES:
                    errors[f"{key}_time_range"] = f"{where}, time range: choose a time range"
                value: Any = None
                try:
                    value = _threshold(metric, row["value"], currency)
                    if row["operator"] == "between":
                        if not row["value2"]:
                            raise ValueError("“between” needs a second (upper) value")
                        value = [value, _threshold(metric, row["value2"], currency)]
                except ValueError as exc:
                    errors[f"{key}_value"] = f"{where}, value: {exc}"
                nodes.append({"metric": metric, "operator": row["operator"], "value": value,
                              "time_range": row["time_range"]})
            groups.append({"logic": g["logic"] if g["logic"] in ("and", "or") else "and", "conditions": nodes})
        if not any(g["conditions"] for g in groups):
            errors["g0_r0_metric"] = "Conditions: add at least one condition (metric, comparison, value, range)"
        root = groups[0] if len(groups) == 1 else {"logic": v["root_logic"] if v["root_logic"] in ("and", "or")
                                                   else "and", "conditions": groups}
        targets: dict[str, float] = {}
        for k, t in enumerate(v["targets"]):
            label = f"Target {t['metric'].upper()}"
            try:
                if not t["value"]:
                    raise ValueError("enter a value")
                amount = (_money(t["value"], currency) if t["metric"] in describe.MONEY_METRICS
                          else _number(t["value"]))
                targets[f"target_{t['metric']}"] = amount
            except ValueError as exc:
                errors[f"t{k}_value"] = f"{label}: {exc}"
        return {"targets": targets, "conditions": root}, errors
    if step == "actions":
        actions: list[dict[str, Any]] = []
        for kind in v["types"]:
            a: dict[str, Any] = {"type": kind}
            if kind in ("increase_budget_pct", "decrease_budget_pct"):
                try:
                    pct = _number(v[f"{kind}_pct"]) if v[f"{kind}_pct"] else None
                    if pct is None:
                        raise ValueError("enter a percentage, e.g. 20")
                    a["pct"] = pct
                except ValueError as exc:
                    errors[f"{kind}_pct"] = f"{ACTIONS[kind]}, percent: {exc}"
            if kind == "relaunch" and v["relaunch_creative_id"]:
                a["creative_id"] = v["relaunch_creative_id"]
            actions.append(a)
        if not actions:
            errors["action"] = "Actions: choose at least one action"
        return {"actions": actions}, errors
    if step == "schedule":
        schedule: dict[str, Any] = {"mode": v["mode"] if v["mode"] in MODES else "schedule"}
        if schedule["mode"] == "schedule":
            try:
                schedule["interval_minutes"] = _integer(v["interval"], "Every (minutes)")
                if not 5 <= schedule["interval_minutes"] <= 1440:
                    errors["interval"] = "Every (minutes): between 5 and 1440 minutes"
            except ValueError as exc:
                errors["interval"] = str(exc)
        if schedule["mode"] == "cron":
            if not v["cron"]:
                errors["cron"] = "Cron expression: required for “At cron times”, e.g. 0 9 * * 1-5"
            schedule["cron"] = v["cron"]
        parts = []
        for k, d in enumerate(v["dayparts"]):
            where = f"Time window {k + 1}"
            if not d["days"]:
                errors[f"d{k}_days"] = f"{where}: tick at least one day"
            for edge in ("start", "end"):
                if not _HHMM.match(d[edge]) or (edge == "start" and d[edge] == "24:00"):
                    errors[f"d{k}_{edge}"] = f"{where}, {edge}: a time as HH:MM, e.g. 09:00"
            parts.append({"days": [x for x in d["days"] if x in DAYS], "start": d["start"], "end": d["end"]})
        if parts:
            schedule["dayparts"] = parts
        return {"schedule": schedule}, errors
    if step == "protections":
        p: dict[str, Any] = {"change_pool_member_budgets": bool(v["change_pool_member_budgets"])}
        for key, label in (("cooldown_minutes", "Cooldown (minutes)"),
                           ("max_executions_per_day", "Most changes per entity a day")):
            try:
                p[key] = _integer(v[key], label)
            except ValueError as exc:
                errors[key] = str(exc)
        try:
            p["budget_change_limit_pct"] = _number(v["budget_change_limit_pct"]) if v[
                "budget_change_limit_pct"] else 20.0
        except ValueError as exc:
            errors["budget_change_limit_pct"] = f"Budget change limit (%): {exc}"
        if v["budget_daily_cap"]:
            try:
                p["budget_daily_cap_cents"] = fmt.parse_amount(v["budget_daily_cap"], currency)
            except ValueError as exc:
                errors["budget_daily_cap"] = f"Daily budget cap: {exc}"
        return {"protections": p}, errors
    raise KeyError(step)


def build(draft: Mapping[str, Any], ctx: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Errors]]:
    """The whole definition and the errors of each step that has some."""
    definition: dict[str, Any] = {}
    errors: dict[str, Errors] = {}
    for step in STEPS:
        part, errs = build_step(step, draft["steps"][step], ctx)
        definition.update(part)
        if errs:
            errors[step] = errs
    return definition, errors


# ---------------------------------------------------------------- the API's 422 → step and field

_PATH = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.+)$", re.DOTALL)
_TAGS = {"group", "condition", *ACTIONS}
_PROTECTION_FIELDS = {"cooldown_minutes": "Cooldown (minutes)", "max_executions_per_day":
                      "Most changes per entity a day", "budget_change_limit_pct": "Budget change limit (%)",
                      "budget_daily_cap_cents": "Daily budget cap",
                      "change_pool_member_budgets": "Change budgets of pool members"}


def _locate(path: str, draft: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(step, form field, label)`` of a definition path such as ``conditions.conditions[0].conditions[1].value``."""
    parts = [p for p in path.split(".") if p not in _TAGS]
    head = re.sub(r"\[\d+\]$", "", parts[0]) if parts else ""
    if head == "name":
        return "scope", "name", "Name"
    if head == "scope":
        rest = parts[1:]
        leaf = re.sub(r"\[\d+\]$", "", rest[-1]) if rest else ""
        return {"ad_account_ids": ("scope", "account", "Ad accounts"), "entity_level": ("scope", "level",
                                                                                          "Entity level"),
                "name_contains": ("scope", "name_contains", "Name contains"),
                "status_in": ("scope", "status_in", "Status")}.get(leaf, ("scope", "account", "Scope"))
    if head == "targets":
        return "conditions", "t0_value", "Targets"
    if head == "conditions":
        indices = [int(m) for p in parts for m in re.findall(r"conditions\[(\d+)\]", p)]
        leaf = parts[-1] if parts and "[" not in parts[-1] and parts[-1] != "conditions" else "metric"
        leaf = leaf if leaf in ("metric", "operator", "value", "time_range") else "metric"
        several = len(draft["steps"]["conditions"]["groups"]) > 1
        if several and len(indices) >= 2:
            i, j = indices[0], indices[1]
        elif not several and indices:
            i, j = 0, indices[0]
        else:
            return "conditions", "g0_r0_metric", "Conditions"
        return "conditions", f"g{i}_r{j}_{leaf}", f"Group {i + 1}, condition {j + 1}, {leaf.replace('_', ' ')}"
    if head == "actions":
        m = re.match(r"actions\[(\d+)\]", parts[0])
        types = draft["steps"]["actions"]["types"]
        if m and int(m.group(1)) < len(types):
            kind = types[int(m.group(1))]
            if kind in ("increase_budget_pct", "decrease_budget_pct"):
                return "actions", f"{kind}_pct", f"{ACTIONS[kind]}, percent"
            if kind == "relaunch" and parts[-1] == "creative_id":
                return "actions", "relaunch_creative_id", "Creative id"
        return "actions", "action", "Actions"
    if head == "schedule":
        rest = parts[1:]
        if rest and rest[0].startswith("dayparts"):
            m = re.match(r"dayparts\[(\d+)\]", rest[0])
            k = int(m.group(1)) if m else 0
            leaf = rest[1] if len(rest) > 1 and rest[1] in ("days", "start", "end") else "start"
            return "schedule", f"d{k}_{leaf}", f"Time window {k + 1}, {leaf}"
        leaf = rest[0] if rest else ""
        return {"cron": ("schedule", "cron", "Cron expression"),
                "interval_minutes": ("schedule", "interval", "Every (minutes)")}.get(leaf, ("schedule", "mode",
                                                                                           "Schedule"))
    if head == "protections":
        leaf = parts[1] if len(parts) > 1 else ""
        key = "budget_daily_cap" if leaf == "budget_daily_cap_cents" else leaf
        if leaf in _PROTECTION_FIELDS:
            return "protections", key, _PROTECTION_FIELDS[leaf]
        return "protections", "cooldown_minutes", "Protections"
    return "review", "_form", ""


def api_errors(fields: Mapping[str, str], message: str, draft: Mapping[str, Any], currency: str | None,
               locale: str = "en") -> dict[str, Errors]:
    """The rules API's 422 (``errors[].field`` and messages, possibly several ``path: message`` joined by ``;``)
    as ``{step: {form field: "Label: message"}}``; what names no field goes under ``review`` / ``_form``."""
    out: dict[str, Errors] = {}
    for raw_field, raw_message in fields.items():
        base = raw_field.removeprefix("definition.")
        pieces = raw_message.split("; ") if raw_message.startswith(base + ".") else [raw_message]
        for piece in pieces:
            path, text = base, piece
            m = _PATH.match(piece)
            if m and (m.group(1).split(".")[0].split("[")[0] == base.split(".")[0].split("[")[0]):
                path, text = m.group(1), m.group(2)
            elif m and "." not in m.group(1) and m.group(1) in ("value", "metric", "operator", "time_range"):
                path, text = f"{base}.{m.group(1)}", m.group(2)
            step, key, label = _locate(path, draft)
            text = fmt.humanize(text, currency, locale)
            out.setdefault(step, {}).setdefault(key, f"{label}: {text}" if label else text)
    if not out:
        out["review"] = {"_form": fmt.humanize(message, currency, locale)}
    return out


# ---------------------------------------------------------------- preview → what to show


def preview_view(p: Mapping[str, Any], names: Mapping[str, str], currency: str | None,
                 locale: str = "en") -> dict[str, Any]:
    """The preview's counts, matched entities with their proposed changes and the guardrails' verdict on each,
    skipped entities with the reason, the guardrails' overall answer and the ownership warnings."""
    def name(e: Mapping[str, Any]) -> str:
        return str(e.get("name") or names.get(str(e.get("entity_id"))) or e.get("entity_id"))

    matched = []
    for m in p.get("matched") or []:
        cur = next((a.get("currency") for a in m.get("actions") or [] if a.get("currency")), None) or currency
        verdicts = []
        for line in m.get("guardrails") or []:
            verdict = str(line.get("verdict"))
            text = fmt.VERDICTS.get(verdict, verdict)
            if verdict == "trimmed" and line.get("approved_to_cents") is not None:
                text += f" to {fmt.money(line['approved_to_cents'], line.get('currency') or cur, locale)}"
            if line.get("note"):
                text += f": {fmt.humanize(str(line['note']), line.get('currency') or cur, locale)}"
            verdicts.append({"verdict": verdict, "text": text})
        matched.append({
            "name": name(m), "snapshot": describe._snapshot(m.get("snapshot") or {}, [], cur, locale),
            "changes": [describe.change_text(a, cur, locale) for a in m.get("actions") or []],
            "skipped_actions": [f"{describe.action_text({'type': s.get('type')}, locale)}: "
                                f"{describe.skip_text(s.get('reason'), s.get('detail'))}"
                                for s in m.get("skipped_actions") or []],
            "verdicts": verdicts})
    g = p.get("guardrails") or {}
    guardrails: dict[str, Any] | None
    if not g:
        guardrails = None
    elif not g.get("available", True):
        guardrails = {"status": "unknown", "text": f"The guardrails could not be asked: {g.get('error')}"}
    elif not g.get("actions") and not p.get("proposed_actions"):
        guardrails = {"status": "none", "text": "No budget or status change to check: nothing would change."}
    else:
        status = str(g.get("status") or "")
        text = fmt.VERDICTS.get(status, status.replace("_", " ").capitalize())
        if g.get("check"):
            text += f" by the “{str(g['check']).replace('_', ' ')}” check"
        if g.get("reason"):
            text += f": {fmt.humanize(str(g['reason']), currency, locale)}"
        if g.get("observe_only"):
            text += " (observe mode: nothing would be applied)"
        guardrails = {"status": status, "text": text,
                      "notes": [fmt.humanize(str(n), currency, locale) for n in g.get("notes") or []]}
    members = p.get("pool_members")
    return {
        "evaluated": p.get("entities_evaluated") or 0, "matched_count": p.get("matched_count") or 0,
        "skipped_count": p.get("skipped_count") or 0, "matched": matched,
        "skipped": [{"name": name(s), "why": describe.skip_text(s.get("reason"), s.get("detail"))}
                    for s in p.get("skipped") or []],
        "skip_counts": [(describe.skip_text(k), n) for k, n in sorted((p.get("skip_counts") or {}).items(),
                                                                      key=lambda kv: (-kv[1], kv[0]))],
        "guardrails": guardrails, "warnings": list(p.get("warnings") or []),
        "pool_members": None if members is None else [
            f"{mm.get('name') or names.get(str(mm.get('entity_id'))) or mm.get('entity_id')} (pool {mm.get('pool_id')})"
            for mm in members],
        "would_auto_pause": (p.get("would_auto_pause") or {}).get("auto_pause_reason"),
    }
