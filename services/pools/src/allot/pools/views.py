"""The pools API's responses in one place: the response models (camelCase by alias; the OpenAPI document is
generated from them) and the functions that render stored rows and engine results as those bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from allot.pools import workflow
from allot.pools.domain import EngineState, MemberState, reports
from allot.pools.domain import backtest as bt
from allot.pools.domain.stored import (
    StoredAllocation,
    StoredMember,
    StoredNote,
    StoredOutcome,
    StoredPool,
    StoredReportedEntity,
)
from allot.runtime.openapi import Body as ResponseBody
from allot.runtime.openapi import Json

# ---------------------------------------------------------------- views


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def member_view(m: StoredMember) -> dict[str, Any]:
    return {
        "id": str(m.member_id),
        "poolId": str(m.pool_id),
        "entityType": m.entity_type,
        "entityId": m.entity_id,
        "adAccountId": m.ad_account_id,
        "entityName": m.entity_name,
        "platform": m.platform,
        "currency": m.currency,
        "minBudgetCents": m.min_budget_cents,
        "maxBudgetCents": m.max_budget_cents,
        "weight": m.weight,
        "isActive": m.is_active,
        "createdAt": _iso(m.created_at),
        "updatedAt": _iso(m.updated_at),
    }


def engine_settings_view(p: StoredPool) -> dict[str, Any]:
    """The engine settings a pool runs with (its own, or the engine's default where it set none: listed in
    ``engineDefaults``)."""
    ps = workflow.pool_settings(workflow.settings_snapshot(p))
    cw = ps.composite
    return {
        "persistenceIntervals": ps.persistence_intervals,
        "cooldownHours": ps.cooldown_hours,
        "deadbandPct": ps.deadband_pct,
        "explorationShare": ps.exploration_share,
        "compositeWeights": {
            "roas": cw.roas,
            "cpa": cw.cpa,
            "frequencyRisk": cw.frequency_risk,
            "engagementDecay": cw.engagement_decay,
        },
        "engineDefaults": [to_camel(k) for k in (*workflow.ENGINE_KNOBS, "composite_weights") if getattr(p, k) is None],
    }


def pool_view(p: StoredPool, members: list[StoredMember]) -> dict[str, Any]:
    state = EngineState.from_dict(p.engine_state or {})
    return {
        "id": str(p.pool_id),
        "workspaceId": p.workspace_id,
        "name": p.name,
        "optimizationMetric": p.optimization_metric,
        "dailyBudgetCents": p.daily_budget_cents,
        "currency": p.currency,
        "allocationFrequencyHours": p.allocation_frequency_hours,
        "defaultMinBudgetCents": p.default_min_budget_cents,
        "defaultMaxBudgetCents": p.default_max_budget_cents,
        "minBudgetChange": p.min_budget_change_cents,
        "status": "deleted" if p.deleted_at else p.status,
        "autonomy": p.autonomy,
        **engine_settings_view(p),
        "version": p.version,
        "createdAt": _iso(p.created_at),
        "updatedAt": _iso(p.updated_at),
        "deletedAt": _iso(p.deleted_at),
        "lastScheduledSlot": _iso(p.last_scheduled_slot),
        "engine": {
            "frozenUntil": _iso(state.frozen_until),
            "frozenReason": state.frozen_reason,
            "lastPlanAt": _iso(state.last_plan_at),
        },
        "activeMemberCount": sum(1 for m in members if m.is_active),
        "members": [member_view(m) for m in members],
    }


def outcome_view(o: StoredOutcome) -> dict[str, Any]:
    return {
        "actionId": str(o.action_id),
        "entityId": o.entity_id,
        "outcome": o.outcome,
        "beforeCents": o.before_cents,
        "afterCents": o.after_cents,
        "observedCents": o.observed_cents,
        "error": o.error,
        "executedAt": _iso(o.executed_at),
    }


def allocation_view(a: StoredAllocation, outcomes: list[StoredOutcome]) -> dict[str, Any]:
    return {
        "id": str(a.allocation_id),
        "requestId": str(a.allocation_id) if a.kind == "allocation" else None,
        "poolId": str(a.pool_id),
        "kind": a.kind,
        "trigger": a.trigger,
        "status": a.status,
        "autonomy": a.autonomy,
        "idempotencyKey": a.idempotency_key,
        "requestedBy": a.requested_by,
        "createdAt": _iso(a.created_at),
        "plannedAt": _iso(a.planned_at),
        "updatedAt": _iso(a.updated_at),
        "eventId": str(a.event_id) if a.event_id else None,
        "settings": workflow.camel(a.settings),
        "inputs": a.inputs,
        "plan": a.plan,
        "actions": a.actions,
        "decision": a.decision,
        "outcomes": [outcome_view(o) for o in outcomes],
    }


# ---------------------------------------------------------------- response models (camelCase: by alias)

#: A moment as the views write it (``datetime.isoformat()``).
IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class _Out(ResponseBody):
    """A response body: snake_case fields written (and read) by their camelCase alias."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class MemberView(_Out):
    """A pool member (an inactive one claims nothing)."""

    id: str
    pool_id: str
    entity_type: str = Field(description="campaign | adset")
    entity_id: str
    ad_account_id: str | None
    entity_name: str | None
    platform: str
    currency: str
    min_budget_cents: int | None = Field(description="Floor; null: the pool's default.")
    max_budget_cents: int | None = Field(description="Ceiling; null: the pool's default.")
    weight: float
    is_active: bool
    created_at: IsoTime
    updated_at: IsoTime


class CompositeWeightsView(_Out):
    roas: float
    cpa: float
    frequency_risk: float
    engagement_decay: float


class EngineStateView(_Out):
    frozen_until: IsoTime | None = Field(description="The engine makes no move on the pool until then.")
    frozen_reason: str | None
    last_plan_at: IsoTime | None


class PoolView(_Out):
    """A budget pool: its settings, the engine settings in force, its engine state and its members."""

    id: str
    workspace_id: str
    name: str
    optimization_metric: str = Field(description="roas | cpa | conversions | revenue")
    daily_budget_cents: int
    currency: str
    allocation_frequency_hours: int
    default_min_budget_cents: int
    default_max_budget_cents: int | None
    min_budget_change: int = Field(description="Minimum change in cents (smaller moves are not made).")
    status: str = Field(description="active | paused | deleted")
    autonomy: str = Field(description="observe logs only; live publishes.")
    persistence_intervals: int
    cooldown_hours: float
    deadband_pct: float
    exploration_share: float
    composite_weights: CompositeWeightsView
    engine_defaults: list[str] = Field(description="The engine settings the pool never set (the defaults apply).")
    version: int
    created_at: IsoTime
    updated_at: IsoTime
    deleted_at: IsoTime | None
    last_scheduled_slot: IsoTime | None
    engine: EngineStateView
    active_member_count: int
    members: list[MemberView]


class PoolList(_Out):
    pools: list[PoolView]


class ReportedEntity(_Out):
    """A campaign or ad set as last reported by the platform, with the pool it belongs to, if any."""

    entity_id: str
    entity_type: str
    entity_name: str | None
    platform: str
    ad_account_id: str
    ad_account_name: str | None
    timezone_name: str
    status: str
    daily_budget_cents: int | None
    currency: str | None
    reported_at: IsoTime | None
    pool_id: str | None
    pool_name: str | None


class ReportedEntityList(_Out):
    entities: list[ReportedEntity]


class OutcomeView(_Out):
    action_id: str
    entity_id: str
    outcome: str
    before_cents: int | None
    after_cents: int | None
    observed_cents: int | None
    error: str | None
    executed_at: IsoTime | None


class AllocationView(_Out):
    """An allocation (or a simulation): the settings it ran with, the engine's inputs and plan, its actions, the
    guardrails' decision and the executor's outcomes."""

    id: str
    request_id: str | None = Field(description="The allocation.requested id (null for a simulation).")
    pool_id: str
    kind: str = Field(description="allocation | simulation")
    trigger: str = Field(description="manual | scheduled | simulate")
    status: str = Field(description="queued | requested | observed | frozen | no_change | blocked | "
                                    "guardrail_observed | executing | executed | partially_failed | failed | "
                                    "cancelled | simulated")
    autonomy: str
    idempotency_key: str | None
    requested_by: str
    created_at: IsoTime
    planned_at: IsoTime | None
    updated_at: IsoTime
    event_id: str | None
    settings: dict[str, Json] = Field(description="The pool's settings when it was queued.")
    inputs: Json = Field(description="A summary of the engine's inputs.")
    plan: Json = Field(description="Every member's before / after / why, and the plan's flags.")
    actions: Json = Field(description="The (would-be) set_budget actions.")
    decision: Json = Field(description="The guardrail.blocked payload, if any.")
    outcomes: list[OutcomeView]


class SimulationView(AllocationView):
    """A simulation: what the engine would do on stored history; each action with the guardrails' verdict."""

    actions: list[dict[str, Json]] = Field(description="The would-be actions, each with its guardrails line.")
    guardrails: dict[str, Json] = Field(
        description="The guardrails' dry-run answer (available: true and their verdict, or available: false and "
                    "error).")


class AllocateResult(_Out):
    """A manual allocation: queued (202), or run and waited for (200 when it ended, 202 while still pending)."""

    request_id: str
    status: str
    idempotency_key: str | None = Field(None, description="Asynchronous: the day's key of the pool.")
    replayed: bool = Field(description="The day's allocation already existed: nothing published again.")
    allocation: AllocationView
    message: str | None = Field(None, description="Synchronous, still pending: where to look.")


class NoteView(_Out):
    """Something logged against the pool that is not an allocation (a pacing recommendation touching its members);
    the note's own keys follow."""

    id: str
    kind: str
    at: IsoTime


class AllocationLog(_Out):
    pool_id: str
    allocations: list[AllocationView] = Field(description="Newest first.")
    notes: list[NoteView]


class DiminishingReturnsFinding(_Out):
    member_id: str
    entity_id: str
    entity_name: str | None
    entity_type: str
    spend_before_cents_per_day: int
    spend_after_cents_per_day: int
    roas_before: float
    roas_after: float
    spend_growth_pct: float
    explanation: str


class ResponseCurvePoint(_Out):
    spend_cents_per_day: int = Field(description="Daily spend in cents.")
    value_per_day: float = Field(
        description="The posterior-mean daily value at that spend, in the curve's valueUnit (revenue in cents, or "
        "conversions)."
    )


class MemberResponseCurve(_Out):
    """One member's response curve as the engine fits it for a plan (a Hill curve ``V(x) = A x^h / (x^h + K^h)``
    with a posterior over its shape and scale): the posterior-mean curve on a spend grid."""

    member_id: str
    entity_id: str
    entity_name: str | None
    entity_type: str
    budget_cents: int = Field(description="The member's daily budget now, in cents.")
    equal_share_cents: int = Field(description="The pool's equal share (daily budget over the planned members).")
    kind: Literal["concave", "s_shaped"] = Field(
        description="concave: each extra cent returns less (posterior-mean Hill exponent at most 1); s_shaped: "
        "little return until the spend passes the curve's bend, then diminishing (exponent above 1)."
    )
    hill_exponent: float = Field(description="The posterior-mean Hill exponent h.")
    evidence_days: float = Field(description="Days of delivery in the engine's look-back the curve rests on.")
    prior_only: bool = Field(
        description="No evidence yet: the curve is the prior (the pool's value per spend at the equal share)."
    )
    value_unit: Literal["revenue_cents", "conversions"] = Field(
        description="What the pool's metric counts as value: revenue in cents (ROAS and revenue pools; conversions "
        "priced at the pool's revenue per conversion when a composite mixes both) or conversions (CPA and "
        "conversions pools)."
    )
    points: list[ResponseCurvePoint] = Field(
        description="The curve at evenly spaced daily spends from 0 to twice the larger of the budget and the "
        "equal share."
    )


class DiminishingReturnsReport(_Out):
    """Active members whose spend grew without their ROAS improving, and each member's response curve as the engine
    fits it."""

    pool_id: str
    as_of: IsoTime
    window_days: float
    min_spend_growth_pct: float
    entity_type: str
    evaluated_members: int
    findings: list[DiminishingReturnsFinding]
    curves: list[MemberResponseCurve] = Field(
        description="Per evaluated member the engine shares the budget among (active, not paused, with a budget), "
        "its fitted response curve from the inputs and engine state a plan made now would get."
    )


class BacktestMoveView(_Out):
    at: IsoTime
    entity_id: str
    from_cents: int
    to_cents: int
    explanation: str


class BacktestMember(_Out):
    entity_id: str
    current_budget_cents: int


class BacktestReport(_Out):
    """The engine replayed over stored metrics of the period, in the local days of the pool's ad account."""

    pool_id: str
    from_: IsoTime = Field(alias="from")
    to: IsoTime
    plans: int
    frozen_plans: int
    actual_spend_cents: int
    actual_value_cents: int
    estimated_value_cents: int
    estimated_uplift_pct: float
    changes_per_member_per_day: float
    timezone_name: str
    final_budgets: dict[str, int] = Field(description="Each member's budget at the end of the replay.")
    moves: list[BacktestMoveView]
    members: list[BacktestMember]


def reported_entity_view(r: StoredReportedEntity) -> dict[str, Any]:
    return {
        "entityId": r.entity_id,
        "entityType": r.entity_type,
        "entityName": r.entity_name,
        "platform": r.platform,
        "adAccountId": r.ad_account_id,
        "adAccountName": r.ad_account_name or None,
        "timezoneName": r.timezone_name or "UTC",
        "status": r.status,
        "dailyBudgetCents": r.daily_budget_cents,
        "currency": r.currency,
        "reportedAt": _iso(r.reported_at),
        "poolId": str(r.pool_id) if r.pool_id else None,
        "poolName": r.pool_name,
    }


def allocation_log_view(
    pool_id: Any, rows: Sequence[StoredAllocation], outcomes: Sequence[StoredOutcome], notes: Sequence[StoredNote]
) -> dict[str, Any]:
    by_alloc: dict[Any, list[StoredOutcome]] = {}
    for o in outcomes:
        by_alloc.setdefault(o.allocation_id, []).append(o)
    return {
        "poolId": str(pool_id),
        "allocations": [allocation_view(r, by_alloc.get(r.allocation_id, [])) for r in rows],
        "notes": [{"id": str(n.note_id), "kind": n.kind, "at": _iso(n.at), **n.body} for n in notes],
    }


def with_verdicts(view: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    """A simulation's view with the guardrails' dry-run answer: ``guardrails`` at the top (status, check, reason,
    notes; or ``available: false`` and why) and on each action its verdict line."""
    lines = {line["action_id"]: line for line in verdict.get("actions") or []}
    actions = [{**a, "guardrails": lines.get(a["actionId"])} for a in view["actions"] or []]
    return {**view, "actions": actions, "guardrails": verdict}


def diminishing_returns_view(pool_id: Any, report: workflow.DiminishingReturnsRun, *, window_days: float,
                             min_spend_growth_pct: float, entity_type: str) -> dict[str, Any]:
    by_entity: Mapping[str, StoredMember] = {m.entity_id: m for m in report.members}

    def finding(f: reports.DiminishingReturnsFinding) -> dict[str, Any]:
        m = by_entity[f.member_id]
        return {
            "memberId": str(m.member_id),
            "entityId": f.member_id,
            "entityName": m.entity_name,
            "entityType": m.entity_type,
            "spendBeforeCentsPerDay": f.spend_before_cents_per_day,
            "spendAfterCentsPerDay": f.spend_after_cents_per_day,
            "roasBefore": round(f.roas_before, 6),
            "roasAfter": round(f.roas_after, 6),
            "spendGrowthPct": round(f.spend_growth_pct, 4),
            "explanation": f.explanation,
        }

    def curve(c: reports.ResponseCurve) -> dict[str, Any]:
        m = by_entity[c.member_id]
        return {
            "memberId": str(m.member_id),
            "entityId": c.member_id,
            "entityName": m.entity_name,
            "entityType": m.entity_type,
            "budgetCents": c.budget_cents,
            "equalShareCents": c.equal_share_cents,
            "kind": c.kind,
            "hillExponent": round(c.hill_exponent, 4),
            "evidenceDays": round(c.evidence_days, 3),
            "priorOnly": c.prior_only,
            "valueUnit": c.value_unit,
            "points": [{"spendCentsPerDay": p.spend_cents_per_day, "valuePerDay": round(p.value_per_day, 4)}
                       for p in c.points],
        }

    return {
        "poolId": str(pool_id),
        "asOf": report.as_of.isoformat(),
        "windowDays": window_days,
        "minSpendGrowthPct": min_spend_growth_pct,
        "entityType": entity_type,
        "evaluatedMembers": len(report.members),
        "findings": [finding(f) for f in report.findings],
        "curves": [curve(c) for c in report.curves],
    }


def backtest_view(pool_id: Any, report: bt.BacktestReport, *, start: datetime, end: datetime, zone: tzinfo,
                  members: Sequence[MemberState]) -> dict[str, Any]:
    return {
        "poolId": str(pool_id),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "plans": report.plans,
        "frozenPlans": report.frozen_plans,
        "actualSpendCents": report.actual_spend_cents,
        "actualValueCents": report.actual_value_cents,
        "estimatedValueCents": report.estimated_value_cents,
        "estimatedUpliftPct": round(report.estimated_uplift_pct, 4),
        "changesPerMemberPerDay": round(report.changes_per_member_per_day, 4),
        "timezoneName": str(getattr(zone, "key", zone)),
        "finalBudgets": dict(report.final_budgets),
        "moves": [
            {
                "at": mv.at.isoformat(),
                "entityId": mv.member_id,
                "fromCents": mv.from_cents,
                "toCents": mv.to_cents,
                "explanation": mv.explanation,
            }
            for mv in report.moves
        ],
        "members": [{"entityId": s.member_id, "currentBudgetCents": s.current_budget_cents} for s in members],
    }
