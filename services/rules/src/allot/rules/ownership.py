"""Which of a rule's in-scope entities a budget pool owns, for its preview and its activation.

The scope is the rules' own projection (every entity of the scope's accounts and level that the scope's filter
keeps, matched or not); the guardrails say which of them are pool members (their arbiter's view), asked over
HTTP with the caller's credentials like the dry run. When they cannot say, the answer carries a warning
instead of failing: a preview or an activation never depends on the guardrails being up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from allot.rules.adapters import postgres as db
from allot.rules.domain.entities import Entity
from allot.rules.domain.evaluation import ScopeMatcher
from allot.rules.domain.models import RuleDefinition
from allot.rules.domain.ownership import PoolMember, membership_unknown_warnings, ownership_warnings
from allot.runtime.db import Conn
from allot.runtime.deps import HasExtra
from allot.runtime.dryrun import pool_membership


async def scope_entities(conn: Conn, workspace_id: str, rule: RuleDefinition) -> dict[str, str]:
    """entity_id → name of every entity in the rule's scope now (deleted ones only when the filter asks for them)."""
    statuses = rule.scope.entity_filter.status_in or ()
    rows = await db.scope_entities(conn, workspace_id, rule.scope.ad_account_ids, rule.scope.entity_level,
                                   "deleted" in statuses)
    matches = ScopeMatcher(rule.scope)
    return {r.entity_id: r.name for r in rows
            if matches(Entity(entity_id=r.entity_id, entity_level=r.entity_type, platform=r.platform,
                              ad_account_id=r.ad_account_id, name=r.name, status=r.status, currency=r.currency,
                              daily_budget_cents=r.daily_budget_cents, zone=UTC))}


async def pool_ownership(ctx: HasExtra, headers: Mapping[str, str], rule: RuleDefinition,
                         scoped: Mapping[str, str]) -> dict[str, Any]:
    """``pool_members`` (entity_id, name, pool_id, seen_at; None when the guardrails cannot say) and ``warnings``."""
    answer = await pool_membership(ctx, headers, sorted(scoped))
    if not answer["available"]:
        return {"pool_members": None, "warnings": membership_unknown_warnings(rule, answer["error"])}
    lines = [{"entity_id": m["entity_id"], "name": scoped.get(m["entity_id"]), "pool_id": m["pool_id"],
              "seen_at": m.get("seen_at")} for m in answer["members"] if m["entity_id"] in scoped]
    members = [PoolMember(line["entity_id"], line["pool_id"], line["name"]) for line in lines]
    return {"pool_members": lines, "warnings": ownership_warnings(rule, members)}
