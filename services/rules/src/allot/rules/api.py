"""Rules HTTP API (thin): CRUD + lifecycle, preview, executions, templates, bulk edit, audit log.

Routes (viewer reads and previews, operator writes; another workspace's ids are 404):
- GET    /api/v1/rules                         list (?status=active|paused, limit, offset), each with
                                               last_fired_at and fires_today (one query for the page)
- POST   /api/v1/rules                         create (the five wizard steps in one body), status ``paused``
- GET    /api/v1/rules/templates               built-in templates
- POST   /api/v1/rules/from-template           create from a template (+ name, scope, targets, overrides)
- POST   /api/v1/rules/preview                 evaluate {rule_id} | {definition} | a rule body, WITHOUT acting; with
                                               the guardrails' verdict per proposed action, the in-scope entities a
                                               budget pool owns (``pool_members``) and ``warnings``
- POST   /api/v1/rules/bulk                    {rule_ids, op: pause|activate|set_cooldown|delete, cooldown_minutes?}
                                              (activate answers with each activated rule's pool ``ownership``)
- GET    /api/v1/rules/{id}                    one rule (with the list's last_fired_at and fires_today)
- PUT    /api/v1/rules/{id}                    replace the definition
- PATCH  /api/v1/rules/{id}                    change some top-level fields (scope/schedule/protections merge)
- DELETE /api/v1/rules/{id}                    delete (history kept)
- POST   /api/v1/rules/{id}/activate|pause     lifecycle (activate answers with ``pool_members`` and ``warnings``
                                               too: it still activates; the guardrails enforce)
- POST   /api/v1/rules/{id}/evaluate-now       evaluate for the current slot now (same slot claim as the scheduler)
- GET    /api/v1/rules/{id}/executions         per-fire history: counts, per-entity outcomes, metric snapshots
- GET    /api/v1/audit-log                     lifecycle audit log (?rule_id, action, limit, before_id)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from allot.contracts.payloads import BudgetAction
from allot.rules import ownership, workflow
from allot.rules.adapters import postgres as db
from allot.rules.domain import TEMPLATES, RuleDefinition, validate_rule
from allot.rules.domain.models import Action, ConditionGroup, Protections, Schedule, Scope
from allot.rules.domain.stored import StoredRule
from allot.rules.domain.templates import template_rule_data
from allot.rules.metrics import RULE_PREVIEWS
from allot.rules.scheduler import evaluate_now
from allot.runtime.accounts import AccountRef, account_refusals, directory_of
from allot.runtime.auth import Principal, require
from allot.runtime.db import Conn
from allot.runtime.dryrun import dry_run
from allot.runtime.http import ApiError
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import Instant, Json, documented, errors
from allot.runtime.service import ServiceContext, get_ctx

router = APIRouter(prefix="/api/v1/rules", tags=["rules"])
audit_router = APIRouter(prefix="/api/v1", tags=["audit"])

_PG_BIGINT_MAX = 2**63 - 1
#: Text compared in SQL: PostgreSQL text cannot hold NUL (a 500 otherwise).
_NO_NUL = r"^[^\x00]*$"
_EDITABLE = ("name", "scope", "targets", "conditions", "actions", "schedule", "protections")
_MERGED = ("scope", "schedule", "protections")


class FromTemplate(BaseModel):
    """Instantiate a built-in template: its conditions/actions/protections + your name, scope and targets."""

    template: str = Field(description="kill_losers, scale_winners, frequency_cap or daily_spend_protection.")
    name: str = Field(min_length=1, max_length=200)
    scope: dict[str, Any]
    targets: dict[str, float] = Field(default_factory=dict)
    schedule: dict[str, Any] | None = None
    protections: dict[str, Any] | None = Field(default=None, description="Overrides of the template's protections.")


class BulkEdit(BaseModel):
    rule_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)
    op: Literal["pause", "activate", "set_cooldown", "delete"]
    cooldown_minutes: int | None = Field(default=None, ge=0, le=10080)


# ---------------------------------------------------------------- response models


class RuleView(ResponseBody):
    """A rule: its definition (the five wizard steps, as validated) with its status and bookkeeping."""

    id: str
    workspace_id: str
    name: str
    status: str = Field(description="active | paused")
    scope: Scope
    targets: dict[str, float]
    conditions: ConditionGroup
    actions: list[Action]
    schedule: Schedule
    protections: Protections
    template: str | None = Field(description="The built-in template it was created from.")
    version: int = Field(description="Incremented by every change of the definition or status.")
    created_by: str = Field(description="The key id that created it.")
    created_at: Instant
    updated_at: Instant
    last_evaluated_at: Instant | None
    last_slot: Instant | None = Field(description="The last slot it fired for.")
    last_error: str | None
    auto_pause_reason: str | None = Field(description="Why the rule paused itself, if it did.")
    auto_paused_at: Instant | None


class RuleWithFires(RuleView):
    """A rule with its fires: an execution fires when its result is requested, notified or auto_paused (not
    no_match)."""

    last_fired_at: Instant | None = Field(description="When its last fire started; null when it never fired.")
    fires_today: int = Field(
        description="Fires started since 00:00 today in the time zone of its scoped ad accounts (as the account "
                    "directory knows them); in UTC when they are in several zones or none is known.")


class PoolMemberLine(ResponseBody):
    """An in-scope entity a budget pool owns (the guardrails' view)."""

    entity_id: str
    name: str | None
    pool_id: str
    seen_at: Json = Field(description="When the guardrails learnt of the membership.")


class PoolOwnership(ResponseBody):
    pool_members: list[PoolMemberLine] | None = Field(
        description="In-scope entities a budget pool owns; null when the guardrails cannot say.")
    warnings: list[str] = Field(description="What the pool ownership means for this rule's budget changes.")


class ActivatedRule(RuleView, PoolOwnership):
    """The activated rule, and which of its in-scope entities a budget pool owns (it activates regardless)."""


class RuleList(ResponseBody):
    rules: list[RuleWithFires]
    limit: int
    offset: int


class TemplateView(ResponseBody):
    """A built-in template: the conditions, actions and protections it gives a rule (targets to fill in)."""

    name: str
    description: str
    conditions: list[dict[str, Json]] = Field(description="Conditions as written (a value may be 'target * 1.2').")
    actions: list[dict[str, Json]]
    required_targets: list[str] = Field(description="Targets the rule must set (``targets``).")
    protections: dict[str, Json]


class TemplateList(ResponseBody):
    templates: list[TemplateView]


class PreviewMatch(ResponseBody):
    entity_id: str
    name: str | None
    platform: str
    ad_account_id: str
    snapshot: dict[str, Json] = Field(description="The metrics the conditions read, by metric@time_range.")
    actions: list[dict[str, Json]] = Field(description="The planned actions (absolute budgets and statuses).")
    skipped_actions: list[dict[str, Json]] = Field(description="Actions not planned on it, with the reason.")
    guardrails: list[dict[str, Json]] = Field(
        description="The guardrails' dry-run verdict of each proposed action on it (approved, trimmed, dropped, "
                    "blocked).")


class PreviewSkip(ResponseBody):
    entity_id: str
    name: str | None
    reason: str = Field(description="A stable reason code (conditions_not_met, cooldown, ...).")
    detail: str
    snapshot: dict[str, Json] | None


class PreviewView(PoolOwnership):
    """What the rule would do now, evaluated on current data; nothing acted on or recorded."""

    rule_id: str | None = Field(description="The saved rule previewed; null for a definition.")
    evaluated_at: Instant
    slot_start: Instant
    entities_evaluated: int
    matched_count: int
    skipped_count: int
    skip_counts: dict[str, int] = Field(description="Skipped entities by reason.")
    would_auto_pause: dict[str, Json] | None = Field(
        description="When evaluating would pause the rule: auto_pause_reason and last_error.")
    matched: list[PreviewMatch]
    skipped: list[PreviewSkip]
    proposed_actions: list[dict[str, Json]] = Field(description="The BudgetActions a firing would send.")
    guardrails: dict[str, Json] = Field(
        description="The guardrails' dry-run answer (available: true and their verdict, or available: false and "
                    "error).")


class BulkResult(ResponseBody):
    op: str
    batch_id: str = Field(description="Shared by the audit entries of this edit.")
    requested: int
    changed: list[str] = Field(description="Rule ids this edit changed.")
    unchanged: list[str] = Field(description="Rule ids already as asked.")
    ownership: dict[str, PoolOwnership] = Field(
        description="op activate: per activated rule id, which in-scope entities a budget pool owns and what that "
                    "means for its budget changes (as a single activation answers); empty for the other ops.")


class ExecutionAction(ResponseBody):
    action_id: str
    request_id: str | None
    action_type: str = Field(description="set_budget | pause | activate | relaunch")
    from_cents: int | None
    to_cents: int | None
    from_status: str | None
    to_status: str | None
    sent_at: Instant | None
    outcome: str = Field(description="pending | succeeded | already_applied | failed | blocked | observed ...")
    outcome_at: Instant | None
    error: str | None


class ExecutionEntity(ResponseBody):
    entity_id: str
    platform: str
    ad_account_id: str
    entity_level: str
    snapshot: Json = Field(description="The metrics the conditions read when it matched.")
    planned: Json = Field(description="The planned actions (absolute).")
    skipped_actions: Json
    outcome: str = Field(description="notified | pending | succeeded | blocked | failed | none")
    actions: list[ExecutionAction]


class ExecutionView(ResponseBody):
    """One firing of a rule: counts, per-entity outcomes and metric snapshots."""

    execution_id: str
    rule_id: str
    slot_start: Instant
    started_at: Instant
    trigger: str = Field(description="schedule | manual | trigger")
    result: str = Field(description="requested | notified | no_match | auto_paused")
    entities_evaluated: int
    matched: int
    skipped: int
    skip_counts: Json
    actions_count: int
    request_ids: list[str]
    auto_pause_reason: str | None
    outcome_counts: dict[str, int]
    entities: list[ExecutionEntity]
    skipped_entities: Json = Field(description="[{entity_id, reason, detail}]")


class EvaluateNowResult(ResponseBody):
    status: str = Field(description="What the evaluation did for the current slot.")
    slot_start: Instant
    execution: ExecutionView | None = Field(description="The slot's execution, when there is one.")


class ExecutionList(ResponseBody):
    rule_id: str
    executions: list[ExecutionView] = Field(description="Newest slot first; page with before.")


class AuditEntry(ResponseBody):
    id: int
    rule_id: str | None
    action: str = Field(description="create | update | activate | pause | delete | bulk | auto_pause ...")
    actor: str = Field(description="The key id (or the service) that acted.")
    at: Instant
    before: Json = Field(description="The rule before (null on create).")
    after: Json = Field(description="The rule after (null on delete).")
    detail: Json


class AuditLog(ResponseBody):
    entries: list[AuditEntry] = Field(description="Newest first.")
    next_before_id: int | None = Field(description="Pass as before_id for the next page; null on the last one.")


# ---------------------------------------------------------------- helpers


def _field(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int) and parts:
            parts[-1] = f"{parts[-1]}[{p}]"
        else:
            parts.append(str(p))
    return ".".join(parts) or "body"


def _validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    errors = []
    for e in exc.errors():
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        errors.append({"field": prefix + _field(tuple(e.get("loc", ()))), "message": msg, "type": e.get("type")})
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid rule"
    return ApiError(422, "validation_failed", message, field=errors[0]["field"] if errors else None,
                    extra={"errors": errors})


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


async def _validated(ctx: ServiceContext, conn: Conn, workspace_id: str, data: Any, prefix: str = "",
                     *, referenced: Collection[str] = ()) -> RuleDefinition:
    """A RuleDefinition validated with the workspace's known accounts (Meta-only metric/action checks) and
    without an ad account it may not reference (tenancy; ``referenced`` ones, already in the rule, stay)."""
    if _has_nul(data):
        # PostgreSQL text and jsonb cannot hold U+0000: a 422, not a database error (500)
        msg = "must not contain NUL (U+0000) characters"
        raise ApiError(422, "validation_failed", f"{prefix or 'body'}: {msg}", field=prefix.rstrip(".") or "body",
                       extra={"errors": [{"field": prefix.rstrip(".") or "body", "message": msg}]})
    accounts: list[str] = []
    if isinstance(data, dict) and isinstance(data.get("scope"), dict):
        ids = data["scope"].get("ad_account_ids")
        if isinstance(ids, (list, tuple)):
            accounts = [str(i).strip() for i in ids if isinstance(i, str)]
    platforms = await db.account_platforms(conn, workspace_id, accounts)
    # labelled by account id (the model names the field, scope.ad_account_ids)
    refs: list[AccountRef] = [(a, platforms.get(a), a) for a in accounts if a not in referenced]
    refused = dict(await account_refusals(ctx.extra, conn, workspace_id, refs,
                                          strict=ctx.settings.require_connected_accounts))
    try:
        return validate_rule(data, account_platforms=platforms, account_refusals=refused)
    except ValidationError as exc:
        raise _validation_error(exc, prefix) from None


def _dump(definition: RuleDefinition) -> dict[str, Any]:
    return definition.model_dump(mode="json")


async def _rule(conn: Conn, principal: Principal, rule_id: uuid.UUID, *, for_update: bool = False) -> StoredRule:
    row = await db.get_rule(conn, principal.workspace_id, rule_id, for_update=for_update)
    if row is None:
        raise ApiError(404, "not_found", f"rule {rule_id} not found", field="rule_id")
    return row


async def _create(ctx: ServiceContext, principal: Principal, definition_data: Any, template: str | None) -> Any:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        definition = await _validated(ctx, conn, principal.workspace_id, definition_data)
        row = await db.insert_rule(conn, rule_id=uuid.uuid4(), workspace_id=principal.workspace_id,
                                   name=definition.name, definition=_dump(definition),
                                   interval_minutes=definition.schedule.interval_minutes, template=template,
                                   created_by=principal.key_id, now=now)
        view = workflow.rule_view(row)
        await db.audit(conn, workspace_id=principal.workspace_id, rule_id=row.rule_id, action="create",
                       actor=principal.key_id, at=now, before=None, after=view,
                       detail={"template": template} if template else {})
    return view


async def _set_status(conn: Conn, principal: Principal, row: StoredRule, status: str, now: datetime,
                      action: str, detail: dict[str, Any] | None = None) -> StoredRule:
    if row.status == status:
        return row
    updated = await db.set_status(conn, row.rule_id, status, now)
    await db.audit(conn, workspace_id=principal.workspace_id, rule_id=row.rule_id, action=action,
                   actor=principal.key_id, at=now, before=workflow.rule_view(row), after=workflow.rule_view(updated),
                   detail=detail)
    return updated


# ---------------------------------------------------------------- collection routes


@router.get("", **documented(RuleList))
async def list_rules(status: Literal["active", "paused"] | None = None, limit: int = Query(100, ge=1, le=1000),
                     offset: int = Query(0, ge=0, le=_PG_BIGINT_MAX), principal: Principal = Depends(require("viewer")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.list_rules(conn, principal.workspace_id, status, limit, offset)
        views = await workflow.rule_views_with_fires(conn, rows, ctx.clock.now(), directory_of(ctx.extra).zone_for)
    return {"rules": views, "limit": limit, "offset": offset}


@router.post("", status_code=201, **documented(RuleView))
async def create_rule(body: RuleDefinition, principal: Principal = Depends(require("operator")),
                      ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return await _create(ctx, principal, _dump(body), None)


@router.get("/templates", **documented(TemplateList))
async def list_templates(principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    return {"templates": [
        {"name": t.name, "description": t.description, "conditions": [dict(c) for c in t.conditions],
         "actions": [dict(a) for a in t.actions], "required_targets": list(t.required_targets),
         "protections": dict(t.protections)} for t in TEMPLATES.values()]}


@router.post("/from-template", status_code=201, **documented(RuleView))
async def create_from_template(body: FromTemplate, principal: Principal = Depends(require("operator")),
                               ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    try:
        data = template_rule_data(body.template, name=body.name, scope=body.scope, targets=body.targets)
    except ValueError as exc:
        raise ApiError(422, "validation_failed", f"template: {exc}", field="template") from None
    if body.schedule is not None:
        data["schedule"] = body.schedule
    if body.protections is not None:
        data["protections"] = {**data["protections"], **body.protections}
    return await _create(ctx, principal, data, body.template)


@router.post("/preview", **documented(PreviewView, 404))
async def preview_rule(request: Request,
                       body: dict[str, Any] = Body(..., description="{rule_id}, {definition} or a rule body."),
                       principal: Principal = Depends(require("viewer")),
                       ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """Evaluate the rule on current data without acting or recording; each proposed action carries the
    guardrails' dry-run verdict (approved / trimmed / dropped / blocked, with the check and its numbers), and
    ``pool_members`` / ``warnings`` say which in-scope entities (matched or not) a budget pool owns."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        rule = None
        if body.get("rule_id") is not None:
            try:
                rule_id = uuid.UUID(str(body["rule_id"]))
            except ValueError:
                raise ApiError(422, "validation_failed", "rule_id: not a valid UUID", field="rule_id") from None
            rule = await _rule(conn, principal, rule_id)
            definition = RuleDefinition.model_validate(rule.definition)
        elif "definition" in body:
            definition = await _validated(ctx, conn, principal.workspace_id, body["definition"], "definition.")
        else:
            definition = await _validated(ctx, conn, principal.workspace_id, body)
        result = await workflow.preview(conn, principal.workspace_id, definition, rule, now,
                                      directory_of(ctx.extra).zone_for)
        scoped = await ownership.scope_entities(conn, principal.workspace_id, definition)
    RULE_PREVIEWS.labels(workflow.SERVICE).inc()
    verdicts, owned = await asyncio.gather(_with_guardrails(ctx, request, result, definition),
                                           ownership.pool_ownership(ctx, request.headers, definition, scoped))
    return {**verdicts, **owned}


async def _with_guardrails(ctx: ServiceContext, request: Request, result: dict[str, Any],
                           definition: RuleDefinition) -> dict[str, Any]:
    """The preview with the guardrails' verdict on its proposed actions (asked with the caller's credentials)."""
    actions = [BudgetAction.model_validate(a) for a in result["proposed_actions"]]
    verdict = await dry_run(ctx, request.headers, source="rule",
                            source_id=result["rule_id"] or str(workflow.PREVIEW_RULE_ID), actions=actions,
                            change_pool_member_budgets=definition.protections.change_pool_member_budgets)
    return workflow.with_verdicts(result, verdict)


@router.post("/bulk", **documented(BulkResult, 404))
async def bulk_edit(body: BulkEdit, request: Request, principal: Principal = Depends(require("operator")),
                    ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    if body.op == "set_cooldown" and body.cooldown_minutes is None:
        raise ApiError(422, "validation_failed", "cooldown_minutes: required for op 'set_cooldown'",
                       field="cooldown_minutes")
    now = ctx.clock.now()
    wanted = list(dict.fromkeys(body.rule_ids))
    batch_id = str(uuid.uuid4())
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            changed, activated = await _bulk_apply(conn, body, principal, wanted, batch_id, now)
        scopes = [await ownership.scope_entities(conn, principal.workspace_id, d) for d in activated]
    owned = await asyncio.gather(*(ownership.pool_ownership(ctx, request.headers, d, scoped)
                                   for d, scoped in zip(activated, scopes, strict=True)))
    return {"op": body.op, "batch_id": batch_id, "requested": len(wanted), "changed": changed,
            "unchanged": [str(i) for i in wanted if str(i) not in changed],
            "ownership": dict(zip(changed, owned, strict=True)) if body.op == "activate" else {}}


async def _bulk_apply(conn: Conn, body: BulkEdit, principal: Principal, wanted: list[uuid.UUID], batch_id: str,
                      now: datetime) -> tuple[list[str], list[RuleDefinition]]:
    """Lock the rules and apply the bulk edit (with its audit entries): the ids changed and, for activate, the
    definitions of the rules activated (in the same order)."""
    changed: list[str] = []
    activated: list[RuleDefinition] = []
    rows = await db.lock_rules(conn, principal.workspace_id, wanted)
    found = {r.rule_id for r in rows}
    missing = [str(i) for i in wanted if i not in found]
    if missing:
        raise ApiError(404, "not_found", f"rule(s) not found: {', '.join(missing)}", field="rule_ids",
                       extra={"not_found": missing})
    for row in rows:
        before = workflow.rule_view(row)
        after: dict[str, Any] | None
        if body.op in ("pause", "activate"):
            status = "paused" if body.op == "pause" else "active"
            if row.status == status:
                continue
            after = workflow.rule_view(await db.set_status(conn, row.rule_id, status, now))
            if status == "active":
                activated.append(RuleDefinition.model_validate(row.definition))
        elif body.op == "set_cooldown":
            definition = dict(row.definition)
            definition["protections"] = {**definition["protections"], "cooldown_minutes": body.cooldown_minutes}
            try:
                checked = RuleDefinition.model_validate(definition)
            except ValidationError as exc:
                raise _validation_error(exc) from None
            after = workflow.rule_view(await db.set_cooldown(conn, row.rule_id, _dump(checked), now))
        else:
            await db.soft_delete(conn, row.rule_id, now)
            after = None
        await db.audit(conn, workspace_id=principal.workspace_id, rule_id=row.rule_id, action="bulk",
                       actor=principal.key_id, at=now, before=before, after=after,
                       detail={"op": body.op, "batch_id": batch_id, "rule_count": len(rows),
                               **({"cooldown_minutes": body.cooldown_minutes} if body.op == "set_cooldown"
                                  else {})})
        changed.append(str(row.rule_id))
    return changed, activated


# ---------------------------------------------------------------- one rule


@router.get("/{rule_id}", **documented(RuleWithFires, 404))
async def get_rule(rule_id: uuid.UUID, principal: Principal = Depends(require("viewer")),
                   ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rule = await _rule(conn, principal, rule_id)
        [view] = await workflow.rule_views_with_fires(conn, [rule], ctx.clock.now(), directory_of(ctx.extra).zone_for)
    return view


async def _update(ctx: ServiceContext, principal: Principal, rule_id: uuid.UUID, merge: dict[str, Any] | None,
                  replace: RuleDefinition | None) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _rule(conn, principal, rule_id, for_update=True)
        if replace is not None:
            data: dict[str, Any] = _dump(replace)
        else:
            assert merge is not None
            data = dict(row.definition)
            for key, value in merge.items():
                if key in _MERGED and isinstance(value, dict) and isinstance(data.get(key), dict):
                    data[key] = {**data[key], **value}
                else:
                    data[key] = value
        definition = await _validated(ctx, conn, principal.workspace_id, data,
                                      referenced=row.definition.get("scope", {}).get("ad_account_ids", ()))
        updated = await db.update_definition(conn, rule_id, name=definition.name, definition=_dump(definition),
                                             interval_minutes=definition.schedule.interval_minutes, now=now)
        view = workflow.rule_view(updated)
        await db.audit(conn, workspace_id=principal.workspace_id, rule_id=rule_id, action="update",
                       actor=principal.key_id, at=now, before=workflow.rule_view(row), after=view,
                       detail={"method": "PUT" if replace is not None else "PATCH",
                               "fields": sorted(merge) if merge is not None else list(_EDITABLE)})
    return view


@router.put("/{rule_id}", **documented(RuleView, 404))
async def replace_rule(rule_id: uuid.UUID, body: RuleDefinition, principal: Principal = Depends(require("operator")),
                       ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    return await _update(ctx, principal, rule_id, None, body)


@router.patch("/{rule_id}", **documented(RuleView, 404))
async def patch_rule(rule_id: uuid.UUID, body: dict[str, Any] = Body(...),
                     principal: Principal = Depends(require("operator")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    for key in body:
        if key == "status":
            raise ApiError(422, "validation_failed", "status: use POST /activate or /pause", field="status")
        if key not in _EDITABLE:
            raise ApiError(422, "validation_failed", f"{key}: not an editable field; editable: {', '.join(_EDITABLE)}",
                           field=key)
    if not body:
        raise ApiError(422, "validation_failed", "body: nothing to change", field="body")
    return await _update(ctx, principal, rule_id, body, None)


@router.delete("/{rule_id}", status_code=204, responses=errors(404))
async def delete_rule(rule_id: uuid.UUID, principal: Principal = Depends(require("operator")),
                      ctx: ServiceContext = Depends(get_ctx)) -> Response:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _rule(conn, principal, rule_id, for_update=True)
        await db.soft_delete(conn, rule_id, now)
        await db.audit(conn, workspace_id=principal.workspace_id, rule_id=rule_id, action="delete",
                       actor=principal.key_id, at=now, before=workflow.rule_view(row), after=None)
    return Response(status_code=204)


@router.post("/{rule_id}/activate", **documented(ActivatedRule, 404))
async def activate_rule(rule_id: uuid.UUID, request: Request, principal: Principal = Depends(require("operator")),
                        ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    """Activate; the answer also says which in-scope entities a budget pool owns (``pool_members``, ``warnings``).
    It activates whatever the guardrails say (they enforce ownership on every change set)."""
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn:
        async with conn.transaction():
            row = await _rule(conn, principal, rule_id, for_update=True)
            view = workflow.rule_view(await _set_status(conn, principal, row, "active", now, "activate"))
        definition = RuleDefinition.model_validate(row.definition)
        scoped = await ownership.scope_entities(conn, principal.workspace_id, definition)
    return {**view, **await ownership.pool_ownership(ctx, request.headers, definition, scoped)}


@router.post("/{rule_id}/pause", **documented(RuleView, 404))
async def pause_rule(rule_id: uuid.UUID, principal: Principal = Depends(require("operator")),
                     ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _rule(conn, principal, rule_id, for_update=True)
        return workflow.rule_view(await _set_status(conn, principal, row, "paused", now, "pause"))


@router.post("/{rule_id}/evaluate-now", **documented(EvaluateNowResult, 404, 409))
async def evaluate_rule_now(rule_id: uuid.UUID, principal: Principal = Depends(require("operator")),
                            ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    result = await evaluate_now(ctx, rule_id, workspace_id=principal.workspace_id, trigger="manual")
    if result.status == "not_found":
        raise ApiError(404, "not_found", f"rule {rule_id} not found", field="rule_id")
    if result.status == "not_active":
        raise ApiError(409, "rule_not_active", "the rule is paused; activate it first (or use preview)",
                       field="status")
    async with ctx.pool.acquire() as conn:
        assert result.slot is not None
        row = await db.execution_for_slot(conn, rule_id, result.slot)
        views = await workflow.execution_views(conn, [row]) if row is not None else []
    return {"status": result.status, "slot_start": result.slot, "execution": views[0] if views else None}


@router.get("/{rule_id}/executions", **documented(ExecutionList, 404))
async def list_executions(rule_id: uuid.UUID, limit: int = Query(20, ge=1, le=200), before: datetime | None = None,
                          principal: Principal = Depends(require("viewer")),
                          ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        await _rule(conn, principal, rule_id)
        rows = await db.list_executions(conn, rule_id, limit, before)
        views = await workflow.execution_views(conn, rows)
    return {"rule_id": str(rule_id), "executions": views}


@audit_router.get("/audit-log", **documented(AuditLog))
async def audit_log(rule_id: uuid.UUID | None = None, action: str | None = Query(None, pattern=_NO_NUL),
                    limit: int = Query(100, ge=1, le=1000),
                    before_id: int | None = Query(None, ge=-_PG_BIGINT_MAX, le=_PG_BIGINT_MAX),
                    principal: Principal = Depends(require("viewer")),
                    ctx: ServiceContext = Depends(get_ctx)) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        rows = await db.audit_log(conn, principal.workspace_id, rule_id=rule_id, action=action, before_id=before_id,
                                  limit=limit)
    entries = [workflow.audit_view(r) for r in rows]
    return {"entries": entries, "next_before_id": entries[-1]["id"] if len(entries) == limit else None}
