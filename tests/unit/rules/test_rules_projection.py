"""The metric projection's report → counters mapping and the service's pure change-set helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from allot.rules.domain import DailyCounters, Entity, RuleHistory, evaluate_rule, instantiate_template
from allot.rules.domain.projection import newer_report, report_counters
from allot.rules.workflow import action_id_for, budget_actions, change_set_envelopes, entity_outcome

NOW = datetime(2026, 5, 17, 10, 7, tzinfo=UTC)


def test_extra_counters_map_onto_meta_fields_and_unknown_keys_are_ignored() -> None:
    c = report_counters(spend_cents=100, impressions=1000, clicks=10, conversions=1, revenue_cents=300, reach=800,
                        extra={"link_clicks": 7, "video_thruplay": 3, "video_view": 9, "quality_ranking": 2})
    assert c == DailyCounters(100, 1000, 10, 1, 300, 800, link_clicks=7, video_views_3s=9, video_thruplays=3)


@given(st.lists(st.tuples(st.integers(0, 10), st.integers(0, 1000)), min_size=1, max_size=6))
def test_the_kept_report_does_not_depend_on_arrival_order(reports: list[tuple[int, int]]) -> None:
    base = datetime(2026, 5, 16, tzinfo=UTC)
    items = [(base + timedelta(hours=h), report_counters(spend_cents=s, impressions=0, clicks=0, conversions=0,
                                                         revenue_cents=0, reach=0)) for h, s in reports]

    def keep(seq: list[tuple[datetime, DailyCounters]]) -> tuple[datetime, DailyCounters]:
        held = seq[0]
        for r in seq[1:]:
            if newer_report(r, held):
                held = r
        return held

    assert keep(items) == keep(list(reversed(items))) == max(items, key=lambda r: (r[0], tuple(r[1])))


def _entity(entity_id: str, budget: int, roas_revenue: int) -> Entity:
    days = {NOW.date() - timedelta(days=k): DailyCounters(spend_cents=10_000, revenue_cents=roas_revenue)
            for k in range(1, 4)}
    return Entity(entity_id, "adset", "meta", "act", entity_id, "active", "EUR", budget, days)


def test_a_fire_becomes_one_change_set_with_absolute_targets_and_deterministic_ids() -> None:
    rule = instantiate_template("scale_winners", name="s", targets={"target_roas": 2.0},
                                scope={"ad_account_ids": ["act"], "entity_level": "adset"})
    entities = {e.entity_id: e for e in (_entity("a", 10_000, 40_000), _entity("b", 5_000, 40_000),
                                         _entity("c", 10_000, 10_000))}
    ev = evaluate_rule(rule, entities.values(), RuleHistory(), NOW)
    rule_id = uuid.uuid4()
    slot_iso = ev.slot_start.isoformat()
    planned = budget_actions(rule_id, rule.name, slot_iso, ev, entities)
    assert [(b.entity_id, b.action_type, b.from_cents, b.to_cents) for _, _, b in planned] == [
        ("a", "set_budget", 10_000, 12_000), ("b", "set_budget", 5_000, 6_000)]
    assert planned[0][2].action_id == action_id_for(rule_id, slot_iso, "a", "increase_budget_pct")
    envs = change_set_envelopes(rule_id=rule_id, workspace_id="ws", slot_iso=slot_iso,
                                actions=[b for _, _, b in planned], manual=False, now=NOW)
    again = change_set_envelopes(rule_id=rule_id, workspace_id="ws", slot_iso=slot_iso,
                                 actions=[b for _, _, b in planned], manual=False, now=NOW + timedelta(minutes=3))
    assert len(envs) == 1 and envs[0].event_id == again[0].event_id
    assert envs[0].causation_id is None
    payload = envs[0].payload
    assert payload.source == "rule" and payload.source_id == str(rule_id)
    assert payload.idempotency_key == f"{rule_id}/{slot_iso}" and len(payload.actions) == 2


def test_more_than_500_actions_are_split_into_parts_with_their_own_keys() -> None:
    rule = instantiate_template("scale_winners", name="s", targets={"target_roas": 2.0},
                                scope={"ad_account_ids": ["act"], "entity_level": "adset"})
    entities = {f"e{i}": _entity(f"e{i}", 10_000, 40_000) for i in range(501)}
    ev = evaluate_rule(rule, entities.values(), RuleHistory(), NOW)
    rule_id = uuid.uuid4()
    slot_iso = ev.slot_start.isoformat()
    actions = [b for _, _, b in budget_actions(rule_id, "s", slot_iso, ev, entities)]
    envs = change_set_envelopes(rule_id=rule_id, workspace_id="ws", slot_iso=slot_iso, actions=actions, manual=True,
                                now=NOW)
    assert [len(e.payload.actions) for e in envs] == [500, 1]
    assert envs[1].payload.idempotency_key == f"{rule_id}/{slot_iso}/part1"
    assert len({e.event_id for e in envs}) == len({e.payload.request_id for e in envs}) == 2


def test_entity_outcome_summarises_its_actions() -> None:
    assert entity_outcome(True, []) == "notified"
    assert entity_outcome(False, [None]) == "pending"
    assert entity_outcome(False, ["succeeded", "already_applied"]) == "succeeded"
    assert entity_outcome(False, ["blocked"]) == "blocked"
    assert entity_outcome(False, ["succeeded", "failed"]) == "failed"
