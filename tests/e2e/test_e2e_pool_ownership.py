"""No fights (#16) end to end: a rule scoped over a budget pool's members, over a simulated week.

Sandbox, guardrails, executor, pools and rules run as processes on one simulated clock (every process reads the
same anchors; SPEED simulated seconds per real second), and the sandbox delivers hourly metrics, so rule slots
and pool cadences come round many times. Two workspaces run side by side:

- A, no opt-in: the rule raises budgets of everything in its account (two pool members and a free ad set). Its
  preview and activation say the members belong to the pool; every budget change it asks on a member is dropped
  with the ownership reason; the members' budgets move only with the pool, so there is no ping-pong; a rule's
  pause still applies to a member.
- B, opted in (``protections.change_pool_member_budgets``) with a 12 h net-change window: the rule's changes on
  members go through, except within the window after the pool changed that budget (the pool has priority: the
  note names the pool once, when it changed the budget and until when its priority holds, on the same clock).

Both: a rule acts on an entity at most once per its cooldown. Absence is checked after sentinels, never a wait.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from allot.runtime.clock import SimulatedClock
from tests.e2e.conftest import E2E, make_stack
from tests.e2e.e2e_support import sentinel
from tests.support.kafka import eventually

pytestmark = pytest.mark.e2e

SPEED = 7200.0  # one simulated hour per half real second: a week in 84 s
WEEK = timedelta(days=7)
OPT_IN = "protections.change_pool_member_budgets"
COOLDOWN_A_MIN, COOLDOWN_B_MIN = 360, 240
WINDOW_B_H = 12
START = 10_000


@pytest.fixture(scope="module")
def sim_stack(kafka_bootstrap: str, database_url: str) -> Iterator[tuple[E2E, SimulatedClock]]:
    anchor_real = time.time()
    anchor_sim = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    stack, workspaces, keys = make_stack(
        kafka_bootstrap, database_url, ["sandbox", "guardrails", "executor", "pools", "rules"], n_workspaces=2,
        extra_env={"ALLOT_CLOCK": "simulated", "ALLOT_CLOCK_SPEED": str(SPEED),
                   "ALLOT_CLOCK_ANCHOR_REAL": repr(anchor_real), "ALLOT_CLOCK_ANCHOR_SIM": anchor_sim.isoformat(),
                   "ALLOT_POOLS_MANUAL_RATE_LIMIT_S": "0", "ALLOT_MAX_ATTEMPTS": "1"})
    try:
        yield E2E(stack, workspaces, keys), SimulatedClock(anchor_real=anchor_real, anchor_sim=anchor_sim, speed=SPEED)
    finally:
        stack.stop()


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Scenario:
    """One workspace: an account with two pool members and a free ad set on the sandbox, a pool, a rule."""

    def __init__(self, e2e: E2E, ws: str, *, opt_in: bool, cadence_h: int, cooldown_min: int) -> None:
        self.e2e, self.ws, self.opt_in, self.cadence_h, self.cooldown_min = e2e, ws, opt_in, cadence_h, cooldown_min
        self.account = f"act-{uuid.uuid4().hex[:6]}"
        self.members = [f"{self.account}-m1", f"{self.account}-m2"]
        self.free = f"{self.account}-free"
        self.pool_id = ""
        self.rule_id = ""
        self.activation: dict[str, Any] = {}

    def rule_body(self, name: str, actions: list[dict[str, Any]], **scope_filter: str) -> dict[str, Any]:
        scope: dict[str, Any] = {"ad_account_ids": [self.account], "entity_level": "adset"}
        if scope_filter:
            scope["entity_filter"] = scope_filter
        return {"name": name, "scope": scope,
                "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "last_3d"}],
                "actions": actions, "protections": {"cooldown_minutes": self.cooldown_min,
                                                    "change_pool_member_budgets": self.opt_in}}

    async def set_up(self, limits: dict[str, Any]) -> None:
        """Entities delivering on the sandbox, limits, the pool (until the guardrails know its members)."""
        with self.e2e.sandbox() as sb:
            r = sb.put(f"/sandbox/accounts/{self.account}/workspace", json={"workspace_id": self.ws})
            assert r.status_code == 200, r.text
            for eid in [*self.members, self.free]:
                r = sb.post("/sandbox/entities", json={
                    "id": eid, "ad_account_id": self.account, "entity_type": "adset", "name": f"{eid} name",
                    "currency": "EUR", "daily_budget_cents": START, "profile": "regular"})
                assert r.status_code in (200, 201), r.text
        with self.e2e.api("guardrails", self.ws) as g:
            r = g.patch("/api/v1/guardrails/limits", json=limits)
            assert r.status_code == 200, r.text
        with self.e2e.api("pools", self.ws) as api:
            async def created() -> Any:
                r = api.post("/api/v1/budget-pools", json={
                    "name": f"pool {self.ws}", "optimizationMetric": "roas", "currency": "EUR",
                    # 4 000 more than the members have: the step limit (20 %) makes the first allocation move both
                    "dailyBudgetCents": 2 * START + 4_000, "allocationFrequencyHours": self.cadence_h,
                    "autonomy": "live", "minBudgetChange": 100,
                    "members": [{"entityType": "adset", "entityId": m, "adAccountId": self.account}
                                for m in self.members]})
                return r if r.status_code == 201 else None

            self.pool_id = (await eventually(created, timeout=60, interval=0.5,
                                             what="the pool created over known entities")).json()["id"]

    async def members_known(self) -> bool:
        with self.e2e.api("guardrails", self.ws) as g:
            r = g.post("/api/v1/guardrails/pool-membership", json={"entity_ids": [*self.members, self.free]})
        return r.status_code == 200 and sorted(m["entity_id"] for m in r.json()["members"]) == self.members

    async def start_rule(self) -> dict[str, Any]:
        """Preview, create and activate the budget rule; returns the preview."""
        body = self.rule_body("raise everything", [{"type": "increase_budget_pct", "pct": 10}])
        with self.e2e.api("rules", self.ws) as api:
            async def previewed() -> Any:
                r = api.post("/api/v1/rules/preview", json=body)
                return r.json() if r.status_code == 200 and r.json()["entities_evaluated"] == 3 else None

            preview = await eventually(previewed, timeout=60, interval=0.5, what="the rule's scope projected")
            r = api.post("/api/v1/rules", json=body)
            assert r.status_code == 201, r.text
            self.rule_id = r.json()["id"]
            r = api.post(f"/api/v1/rules/{self.rule_id}/activate")
            assert r.status_code == 200, r.text
            self.activation = r.json()
        return dict(preview)

    def decisions(self, source_id: str) -> list[dict[str, Any]]:
        with self.e2e.api("guardrails", self.ws) as g:
            r = g.get("/api/v1/guardrails/decisions", params={"source_id": source_id, "limit": 500})
        assert r.status_code == 200, r.text
        return sorted(r.json()["decisions"], key=lambda d: d["decided_at"])

    def member_lines(self, decision: dict[str, Any], member: str) -> list[str]:
        """What a decision says about one member's action (its note; a block's reason names the first cut)."""
        texts = [*decision["notes"], *([decision["reason"]] if decision["status"] == "blocked" else [])]
        return [t for t in texts if t.startswith(f"adset {member}:")]

    def rule_actions(self) -> dict[str, list[dict[str, Any]]]:
        """The rule's budget actions per entity (the rules' own record: sent_at on the rules' clock), in order."""
        with self.e2e.api("rules", self.ws) as api:
            r = api.get(f"/api/v1/rules/{self.rule_id}/executions", params={"limit": 200})
        assert r.status_code == 200, r.text
        out: dict[str, list[dict[str, Any]]] = {}
        for execution in r.json()["executions"]:
            for entity in execution["entities"]:
                out.setdefault(entity["entity_id"], []).extend(
                    a for a in entity["actions"] if a["from_cents"] is not None)
        return {eid: sorted(acts, key=lambda a: a["sent_at"]) for eid, acts in out.items()}

    def writes(self, entity_id: str) -> list[dict[str, Any]]:
        with self.e2e.sandbox() as sb:
            calls = sb.get("/sandbox/calls", params={"entity_id": entity_id}).json()["calls"]
        return [c for c in calls if c["source"] != "human" and c["field"] == "daily_budget_cents"]

    async def stop(self, *more_rules: str) -> None:
        """Pause the rules and the pool, then prove everything they asked was decided and executed."""
        with self.e2e.api("rules", self.ws) as api:
            for rule_id in (self.rule_id, *more_rules):
                assert api.post(f"/api/v1/rules/{rule_id}/pause").status_code == 200
        with self.e2e.api("pools", self.ws) as api:
            assert api.patch(f"/api/v1/budget-pools/{self.pool_id}", json={"status": "paused"}).status_code == 200
        await sentinel(self.e2e, self.ws, f"{self.account}-r", producer="rules", source_id=self.rule_id)
        await sentinel(self.e2e, self.ws, f"{self.account}-p", producer="pools", source_id=self.pool_id)


def assert_cooldown(actions: list[dict[str, Any]], cooldown_min: int) -> None:
    """Consecutive actions of the rule on one entity are a cooldown apart (an action that failed does not start it:
    the failure backoff decides then)."""
    for earlier, later in zip(actions, actions[1:], strict=False):
        if earlier["outcome"] in ("failed", "conflict", "rejected"):
            continue
        gap = _at(later["sent_at"]) - _at(earlier["sent_at"])
        assert gap >= timedelta(minutes=cooldown_min), (earlier, later)


async def test_a_rule_over_pool_members_for_a_simulated_week_never_ping_pongs(
        sim_stack: tuple[E2E, SimulatedClock]) -> None:
    e2e, clock = sim_stack
    a = Scenario(e2e, e2e.workspaces[0], opt_in=False, cadence_h=8, cooldown_min=COOLDOWN_A_MIN)
    b = Scenario(e2e, e2e.workspaces[1], opt_in=True, cadence_h=24, cooldown_min=COOLDOWN_B_MIN)
    ttl = {"approval_ttl_s": 86_400}  # a simulated day: 12 real seconds at SPEED
    await a.set_up(ttl)
    await b.set_up({**ttl, "net_change_window_h": WINDOW_B_H})
    # an entity is a pool member for the guardrails from its pool's first approved allocation
    await eventually(a.members_known, timeout=90, interval=0.5, what="pool A's members known to the guardrails")
    await eventually(b.members_known, timeout=120, interval=0.5, what="pool B's members known to the guardrails")

    preview_a = await a.start_rule()
    await b.start_rule()
    started = clock.now()

    # Told on preview and activation, for the whole scope (the conditions match all three; the free one is no one's).
    for told in (preview_a, a.activation):
        assert sorted(m["entity_id"] for m in told["pool_members"]) == a.members, told
        (warning,) = told["warnings"]
        assert warning.startswith(f"2 ad sets in scope ({a.members[0]} name, {a.members[1]} name) belong to "
                                  f"budget pool {a.pool_id}: this rule's budget changes on them will be skipped")
        assert f"pause/activate still apply; opt in with {OPT_IN}" in warning
    assert a.activation["status"] == "active"
    (opted,) = b.activation["warnings"]
    assert f"opted in with {OPT_IN}" in opted and "skipped" not in opted

    # A simulated week of rule slots and pool cadences.
    async def a_week_passed() -> bool:
        return clock.now() >= started + WEEK

    await eventually(a_week_passed, timeout=WEEK.total_seconds() / SPEED + 60, interval=1.0, what="a simulated week")

    # A rule may still pause a pool member.
    paused_by_rule = ""
    with e2e.api("rules", a.ws) as api:
        r = api.post("/api/v1/rules", json=a.rule_body("pause m1", [{"type": "pause"}],
                                                       name_contains=f"{a.members[0]} name"))
        assert r.status_code == 201, r.text
        paused_by_rule = r.json()["id"]
        r = api.post(f"/api/v1/rules/{paused_by_rule}/activate")
        assert r.json()["warnings"] == [] and [m["entity_id"] for m in r.json()["pool_members"]] == a.members[:1]

        async def member_paused() -> bool:
            api.post(f"/api/v1/rules/{paused_by_rule}/evaluate-now")
            with e2e.sandbox() as sb:
                return sb.get(f"/v1/entities/{a.members[0]}").json()["status"] == "paused"

        await eventually(member_paused, timeout=60, interval=1.0, what="a rule's pause of a pool member applied")

    await a.stop(paused_by_rule)
    await b.stop()
    check_no_opt_in(a)
    check_opted_in(b)


def check_no_opt_in(a: Scenario) -> None:
    rule = a.decisions(a.rule_id)
    pool = [d for d in a.decisions(a.pool_id) if d["status"] == "approved"]
    tries = 0
    for d in rule:
        assert not {x["entity_id"] for x in d["actions"]} & set(a.members), f"a rule changed a member's budget: {d}"
        for m in a.members:
            for line in a.member_lines(d, m):
                tries += 1
                assert f"member of pool {a.pool_id}, which owns its budget" in line and OPT_IN in line, line
    assert tries >= 3, f"the rule kept asking over the week (ownership drops: {tries})"
    assert any(x["entity_id"] == a.free for d in rule for x in d["actions"]), "the rule works on the free ad set"

    for m in a.members:
        # every budget change of a member is the pool's: one per allocation at most, nothing else wrote it
        pool_moves = [x["to_cents"] for d in pool for x in d["actions"]
                      if x["entity_id"] == m and x["action_type"] == "set_budget"]
        writes = a.writes(m)
        assert pool_moves and len(writes) <= len(pool_moves), (m, pool_moves, writes)
        assert all(w["new"] in pool_moves for w in writes), (m, pool_moves, writes)
    acted = a.rule_actions()
    for m in a.members:
        assert len(acted.get(m, [])) >= 2, acted.get(m)
        # blocked (the change set had nothing left) or never executed (dropped from an approved change set); the
        # reason per action is the guardrails' note, checked above
        assert all(x["outcome"] in ("blocked", "pending") for x in acted[m]), acted[m]
        assert_cooldown(acted[m], a.cooldown_min)


_PRIORITY = re.compile(r"which \(higher priority\) changed it at (\S+), within the last (\d+) h "
                       r"\(priority holds until (\S+)\)")


def check_opted_in(b: Scenario) -> None:
    rule = b.decisions(b.rule_id)
    pool = [d for d in b.decisions(b.pool_id) if d["status"] == "approved"]
    pool_changes = {m: [_at(d["decided_at"]) for d in pool for x in d["actions"]
                        if x["entity_id"] == m and x["action_type"] == "set_budget"] for m in b.members}
    window = timedelta(hours=WINDOW_B_H)
    applied = 0
    for d in rule:
        at = _at(d["decided_at"])
        for x in d["actions"]:
            if x["entity_id"] not in b.members:
                continue
            applied += 1
            # the documented priority: the rule's change passed, so the pool had not changed it within the window
            assert not [p for p in pool_changes[x["entity_id"]] if at - window < p <= at], (d, pool_changes)
        for m in b.members:
            for line in b.member_lines(d, m):
                assert "owns its budget" not in line, line  # opted in
                found = _PRIORITY.search(line)
                if found is None:
                    assert "net change within" in line, line  # the net-change window trims every source
                    continue
                changed, hours, until = _at(found[1]), int(found[2]), _at(found[3])
                assert line.count(b.pool_id) == 1 and hours == WINDOW_B_H and until == changed + window, line
                assert changed in pool_changes[m] and changed <= at < until, (line, d["decided_at"])
    assert applied >= 1, "with the opt-in the rule's budget changes on members go through"
    for d in pool:  # the pool is never dropped in favour of the rule
        assert all("(higher priority)" not in n for n in d["notes"]), d
    for acts in b.rule_actions().values():
        assert_cooldown(acts, b.cooldown_min)
