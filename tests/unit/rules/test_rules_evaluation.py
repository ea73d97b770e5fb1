"""evaluate_rule end to end: scope, matching, skip reasons, protections, planned actions, auto-pause."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from allot.rules.domain import (
    ActionOutcome,
    AggregateCache,
    Clamp,
    DailyCounters,
    Entity,
    RuleDefinition,
    RuleHistory,
    SkipReason,
    evaluate_rule,
    in_scope,
    validate_rule,
)

NOW = datetime(2026, 5, 17, 10, 37, tzinfo=UTC)
TODAY = NOW.date()


def days(counters: DailyCounters, back: range = range(1, 8)) -> dict[date, DailyCounters]:
    return {TODAY - timedelta(days=d): counters for d in back}


WINNER = DailyCounters(spend_cents=2_000, revenue_cents=8_000, conversions=4, impressions=10_000, reach=2_000)  # roas 4
LOSER = DailyCounters(spend_cents=2_000, revenue_cents=1_000, conversions=0, impressions=10_000, reach=1_000)  # roas .5


def entity(entity_id: str, counters: DailyCounters = WINNER, **kw: Any) -> Entity:
    fields: dict[str, Any] = dict(
        entity_id=entity_id, entity_level="adset", platform="meta", ad_account_id="act_1",
        name=f"Prospecting {entity_id}", status="active", currency="USD", daily_budget_cents=10_000,
        buckets=days(counters),
    )
    fields.update(kw)
    return Entity(**fields)


def rule(**overrides: Any) -> RuleDefinition:
    data: dict[str, Any] = {
        "name": "scale",
        "scope": {"ad_account_ids": ["act_1", "g_1"], "entity_level": "adset"},
        "targets": {"target_roas": 2.0},
        "conditions": [
            {"metric": "roas", "operator": "gt", "value": "target * 1.2", "time_range": "last_3d"},
            {"metric": "spend", "operator": "gt", "value": 5_000, "time_range": "last_3d"},
        ],
        "actions": [{"type": "increase_budget_pct", "pct": 20}],
    }
    data.update(overrides)
    return validate_rule(data)


def reasons(result: Any) -> dict[str, SkipReason]:
    return {s.entity_id: s.reason for s in result.skipped}


def test_matched_entity_gets_absolute_budget_change_and_snapshot() -> None:
    result = evaluate_rule(rule(), [entity("win"), entity("lose", LOSER)], None, NOW)
    assert result.entities_evaluated == 2
    [match] = result.matched
    assert match.entity_id == "win"
    assert match.snapshot == {"roas@last_3d": 4.0, "spend@last_3d": 6_000}
    [action] = match.actions
    assert (action.type, action.from_cents, action.to_cents) == ("increase_budget_pct", 10_000, 12_000)
    assert reasons(result) == {"lose": SkipReason.CONDITIONS_NOT_MET}
    assert result.auto_pause is None


def test_a_skip_for_unmet_conditions_names_each_failed_condition_with_its_value() -> None:
    result = evaluate_rule(rule(), [entity("lose", LOSER)], None, NOW)
    [skipped] = result.skipped
    # roas 0.5 fails "> target * 1.2" (2.4); spend 6000 passes "> 5000" and is not named
    assert skipped.detail == "roas@last_3d = 0.5, needs > 2.4"


def test_out_of_scope_entities_are_not_counted() -> None:
    entities = [
        entity("other_account", ad_account_id="act_9"),
        entity("campaign_level", entity_level="campaign"),
        entity("in"),
    ]
    result = evaluate_rule(rule(), entities, None, NOW)
    assert result.entities_evaluated == 1
    assert [m.entity_id for m in result.matched] == ["in"]


@pytest.mark.parametrize(
    ("entity_filter", "name", "status", "included"),
    [
        ({"name_contains": "PROSP"}, "us prospecting", "active", True),
        ({"name_contains": "retarget"}, "US Prospecting", "active", False),
        ({"status_in": ["active"]}, "x", "active", True),
        ({"status_in": ["paused", "archived"]}, "x", "active", False),
        ({"name_contains": "x", "status_in": ["paused"]}, "X1", "paused", True),
    ],
)
def test_entity_filter(entity_filter: dict[str, Any], name: str, status: str, included: bool) -> None:
    r = rule(scope={"ad_account_ids": ["act_1"], "entity_level": "adset", "entity_filter": entity_filter})
    assert in_scope(r.scope, entity("e", name=name, status=status)) is included
    assert evaluate_rule(r, [entity("e", name=name, status=status)], None, NOW).entities_evaluated == int(included)


def test_division_by_zero_skips_with_metric_unavailable() -> None:
    r = rule(targets={"target_cpa": 1_000},
             conditions=[{"metric": "cpa", "operator": "gt", "value": "target * 1.5", "time_range": "last_7d"}],
             actions=[{"type": "pause"}])
    no_conversions = entity("nc", LOSER)
    no_spend = entity("ns", DailyCounters())
    result = evaluate_rule(r, [no_conversions, no_spend], None, NOW)
    assert result.matched == ()
    assert reasons(result) == {"nc": SkipReason.METRIC_UNAVAILABLE, "ns": SkipReason.METRIC_UNAVAILABLE}
    assert result.skipped[0].detail == "cpa@last_7d"


def test_snapshot_of_unmatched_entities_on_request() -> None:
    result = evaluate_rule(rule(), [entity("lose", LOSER)], None, NOW, snapshot_unmatched=True)
    assert result.skipped[0].snapshot == {"roas@last_3d": 0.5, "spend@last_3d": 6_000}
    assert evaluate_rule(rule(), [entity("lose", LOSER)], None, NOW).skipped[0].snapshot is None


def test_meta_only_metric_on_non_meta_entity_is_skipped_with_reason() -> None:
    r = rule(conditions={"logic": "or", "conditions": [
        {"metric": "roas", "operator": "gt", "value": 1, "time_range": "last_7d"},
        {"metric": "hook_rate", "operator": "lt", "value": 20, "time_range": "last_7d"},
    ]})
    google = entity("g", platform="google", ad_account_id="g_1")
    result = evaluate_rule(r, [google, entity("m")], None, NOW)
    assert reasons(result) == {"g": SkipReason.METRIC_NOT_SUPPORTED_ON_PLATFORM}
    assert "hook_rate" in result.skipped[0].detail and "google" in result.skipped[0].detail
    assert [m.entity_id for m in result.matched] == ["m"]


def test_relaunch_on_non_meta_entity_is_skipped_with_reason() -> None:
    r = rule(actions=[{"type": "relaunch"}])
    result = evaluate_rule(r, [entity("g", platform="google", ad_account_id="g_1"), entity("m")], None, NOW)
    assert reasons(result) == {"g": SkipReason.ACTION_NOT_SUPPORTED_ON_PLATFORM}
    assert [m.actions[0].type for m in result.matched] == ["relaunch"]


def test_partially_applicable_actions_keep_the_entity_matched() -> None:
    r = rule(actions=[{"type": "pause"}, {"type": "decrease_budget_pct", "pct": 10}])
    result = evaluate_rule(r, [entity("m", daily_budget_cents=200)], None, NOW)
    [match] = result.matched
    assert [a.type for a in match.actions] == ["pause"]
    assert [s.reason for s in match.skipped_actions] == [SkipReason.AT_PLATFORM_MINIMUM]


def test_budget_clamps_flow_through_evaluation() -> None:
    r = rule(actions=[{"type": "increase_budget_pct", "pct": 100}],
             protections={"budget_change_limit_pct": 30, "budget_daily_cap_cents": 12_500})
    result = evaluate_rule(r, [entity("a"), entity("b", daily_budget_cents=12_500)], None, NOW)
    [match] = result.matched
    assert (match.actions[0].to_cents, match.actions[0].clamps) == (
        12_500, (Clamp.BUDGET_CHANGE_LIMIT, Clamp.BUDGET_DAILY_CAP))
    assert reasons(result) == {"b": SkipReason.AT_DAILY_CAP}


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        (RuleHistory(pending_actions_since={"e": [NOW - timedelta(minutes=29, seconds=59)]}),
         SkipReason.PENDING_ACTION),
        (RuleHistory(entity_outcomes={"e": [ActionOutcome(NOW - timedelta(minutes=i + 1), False) for i in range(5)]}),
         SkipReason.FAILURE_BACKOFF),
        (RuleHistory(last_acted_at={"e": NOW - timedelta(minutes=359)}), SkipReason.COOLDOWN),
        (RuleHistory(execution_started_at=[NOW - timedelta(hours=h) for h in (1, 2, 3)]),
         SkipReason.MAX_EXECUTIONS_PER_DAY),
    ],
)
def test_protections_skip_matched_entities_with_snapshot(history: RuleHistory, reason: SkipReason) -> None:
    result = evaluate_rule(rule(), [entity("e")], history, NOW)
    assert result.matched == ()
    [skipped] = result.skipped
    assert skipped.reason is reason
    assert skipped.detail  # every skip says why, with its numbers
    assert skipped.snapshot == {"roas@last_3d": 4.0, "spend@last_3d": 6_000}


@pytest.mark.parametrize(
    "history",
    [
        RuleHistory(pending_actions_since={"e": [NOW - timedelta(minutes=30)]}),
        RuleHistory(entity_outcomes={"e": [ActionOutcome(NOW - timedelta(minutes=i + 1), False) for i in range(4)]}),
        RuleHistory(last_acted_at={"e": NOW - timedelta(minutes=360)}),
        RuleHistory(execution_started_at=[NOW - timedelta(hours=h) for h in (1, 2)]),
        RuleHistory(last_acted_at={"other": NOW}, pending_actions_since={"other": [NOW]}),
    ],
)
def test_protections_just_past_their_boundary_allow(history: RuleHistory) -> None:
    assert [m.entity_id for m in evaluate_rule(rule(), [entity("e")], history, NOW).matched] == ["e"]


def test_cooldown_uses_the_rule_setting() -> None:
    r = rule(protections={"cooldown_minutes": 720})
    history = RuleHistory(last_acted_at={"e": NOW - timedelta(minutes=719)})
    assert reasons(evaluate_rule(r, [entity("e")], history, NOW)) == {"e": SkipReason.COOLDOWN}


def test_pending_check_runs_before_cooldown() -> None:
    history = RuleHistory(last_acted_at={"e": NOW}, pending_actions_since={"e": [NOW]})
    assert reasons(evaluate_rule(rule(), [entity("e")], history, NOW)) == {"e": SkipReason.PENDING_ACTION}


def test_circuit_breaker_auto_pauses_the_rule_and_evaluates_nothing() -> None:
    outcomes = [ActionOutcome(NOW - timedelta(minutes=i + 1), False, f"HTTP 500 #{i}") for i in range(20)]
    result = evaluate_rule(rule(), [entity("e")], RuleHistory(rule_outcomes=outcomes), NOW)
    assert result.entities_evaluated == 0 and result.matched == () and result.skipped == ()
    assert result.auto_pause is not None
    assert result.auto_pause.status == "paused"
    assert result.auto_pause.last_error == "HTTP 500 #0"
    assert "100.0%" in result.auto_pause.auto_pause_reason


def test_circuit_breaker_below_threshold_does_not_pause() -> None:
    outcomes = [ActionOutcome(NOW, i % 2 == 0) for i in range(40)]  # 20 errors, exactly 50 %
    result = evaluate_rule(rule(), [entity("e")], RuleHistory(rule_outcomes=outcomes), NOW)
    assert result.auto_pause is None and len(result.matched) == 1


def test_budget_spent_pct_today_notify_only() -> None:
    r = rule(targets={},
             conditions=[{"metric": "budget_spent_pct", "operator": "gt", "value": 80, "time_range": "today"}],
             actions=[{"type": "notify_only"}])
    over = entity("over", buckets={TODAY: DailyCounters(spend_cents=8_001)})
    exactly = entity("exactly", buckets={TODAY: DailyCounters(spend_cents=8_000)})
    no_budget = entity("nobudget", daily_budget_cents=None, buckets={TODAY: DailyCounters(spend_cents=8_001)})
    result = evaluate_rule(r, [over, exactly, no_budget], None, NOW)
    assert [m.entity_id for m in result.matched] == ["over"]
    assert result.matched[0].snapshot == {"budget_spent_pct@today": pytest.approx(80.01)}
    assert reasons(result) == {"exactly": SkipReason.CONDITIONS_NOT_MET, "nobudget": SkipReason.METRIC_UNAVAILABLE}


def test_result_carries_slot_and_time_and_is_deterministic() -> None:
    entities = [entity("a"), entity("b", LOSER), entity("c", DailyCounters())]
    first = evaluate_rule(rule(), entities, None, NOW)
    assert first == evaluate_rule(rule(), entities, None, NOW)
    assert first.slot_start == datetime(2026, 5, 17, 10, 30, tzinfo=UTC)
    assert first.evaluated_at == NOW
    assert first.skip_counts() == {"conditions_not_met": 1, "metric_unavailable": 1}


def test_shared_cache_gives_identical_results_and_aggregates_each_entity_once() -> None:
    entities = [entity(str(i), WINNER if i % 2 else LOSER) for i in range(10)]
    cache = AggregateCache(NOW)
    rules = [rule(), rule(conditions=[{"metric": "frequency", "operator": "gt", "value": 3, "time_range": "last_7d"}])]
    shared = [evaluate_rule(r, entities, None, NOW, cache=cache) for r in rules]
    assert len(cache) == 10
    assert shared == [evaluate_rule(r, entities, None, NOW) for r in rules]


def test_cache_for_another_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="cache was built for"):
        evaluate_rule(rule(), [], None, NOW, cache=AggregateCache(NOW - timedelta(minutes=1)))


def test_conditions_combine_different_time_ranges() -> None:
    # roas over last_3d is good, but yesterday had no spend → OR with a today check.
    buckets = days(WINNER, range(2, 8))
    r = rule(conditions={"logic": "and", "conditions": [
        {"metric": "roas", "operator": "gt", "value": 3, "time_range": "last_7d"},
        {"logic": "or", "conditions": [
            {"metric": "spend", "operator": "eq", "value": 0, "time_range": "yesterday"},
            {"metric": "spend", "operator": "gt", "value": 100_000, "time_range": "last_30d"},
        ]},
    ]})
    result = evaluate_rule(r, [entity("gap", buckets=buckets), entity("full")], None, NOW)
    assert [m.entity_id for m in result.matched] == ["gap"]
    assert result.matched[0].snapshot == {
        "roas@last_7d": 4.0, "spend@yesterday": 0, "spend@last_30d": 12_000,
    }


def test_dayparts_are_read_in_each_accounts_own_time_zone() -> None:
    """Mon-Fri 09:00-18:00 local: at 10:37 UTC (a Sunday in the test) nobody acts; on a Monday 10:37 UTC it is
    11:37 in Paris (open) and 05:37 in New York (closed)."""
    from zoneinfo import ZoneInfo

    office = rule(schedule={"dayparts": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00",
                                           "end": "18:00"}]})
    paris = entity("paris", zone=ZoneInfo("Europe/Paris"), buckets=days(WINNER, range(-1, 8)))
    new_york = entity("ny", zone=ZoneInfo("America/New_York"), buckets=days(WINNER, range(-1, 8)))
    sunday = evaluate_rule(office, [paris, new_york], None, NOW)
    assert sunday.matched == () and set(reasons(sunday).values()) == {SkipReason.OUTSIDE_SCHEDULE}
    assert all("outside the rule's dayparts" in s.detail for s in sunday.skipped)
    monday = NOW + timedelta(days=1)
    result = evaluate_rule(office, [paris, new_york], None, monday)
    assert [m.entity_id for m in result.matched] == ["paris"]
    assert reasons(result) == {"ny": SkipReason.OUTSIDE_SCHEDULE}


def test_a_daypart_past_midnight_and_bad_windows() -> None:
    night = rule(schedule={"dayparts": [{"days": ["sat"], "start": "22:00", "end": "02:00"}]})
    late_saturday = datetime(2026, 5, 16, 23, 30, tzinfo=UTC)
    early_sunday = datetime(2026, 5, 17, 1, 59, tzinfo=UTC)
    assert night.schedule.open_at(late_saturday) and night.schedule.open_at(early_sunday)
    assert not night.schedule.open_at(early_sunday + timedelta(minutes=1))
    for bad in ({"days": ["sat"], "start": "10:00", "end": "10:00"}, {"days": [], "start": "10:00", "end": "11:00"},
                {"days": ["sat"], "start": "25:00", "end": "11:00"},
                {"days": ["someday"], "start": "1:00", "end": "2"}):
        with pytest.raises(ValueError):
            rule(schedule={"dayparts": [bad]})
