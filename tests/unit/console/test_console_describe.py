"""Plain language for rules and pacing plans, and the spend-over-the-flight chart's geometry (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allot.console import charts
from allot.console import describe as d
from allot.console import formatting as fmt

NB = "\u00a0"


def test_conditions_read_as_nested_and_or_groups_with_values_in_their_unit() -> None:
    tree = d.condition_tree([
        {"metric": "cpa", "operator": "lt", "value": 1_250.0, "time_range": "last_3d"},
        {"logic": "or", "conditions": [
            {"metric": "roas", "operator": "gte", "value": {"target": "target_roas", "multiplier": 1.0},
             "time_range": "today"},
            {"metric": "frequency", "operator": "between", "value": [1.5, 3], "time_range": "last_7d"}]}],
        {"target_roas": 2.5}, "EUR", "de")
    assert tree["heading"] == "All of these (AND)"
    assert tree["items"][0] == {"text": "Cost per acquisition (CPA) over the last 3 days is below 12,50\u00a0€"}
    inner = tree["items"][1]
    assert inner["heading"] == "Any of these (OR)"
    assert [i["text"] for i in inner["items"]] == [
        "Return on ad spend (ROAS) today is at least the target ROAS (2,5)",
        "Frequency over the last 7 days is between 1,5 and 3"]


def test_money_without_a_known_currency_says_so_and_none_is_not_computable() -> None:
    assert d.metric_value("spend", 123_456, None) == "1,234.56 (account currency)"
    assert d.metric_value("cpc", 41.7, "USD") == "$0.42"
    assert d.metric_value("ctr", 1.234, "EUR") == f"1.23{NB}%"
    assert d.metric_value("impressions", 12_000.0, "EUR") == "12,000"
    assert d.metric_value("roas", None, "EUR") == "not computable"


def test_actions_schedule_protections_and_skips_in_words() -> None:
    assert d.action_text({"type": "decrease_budget_pct", "pct": 15}) == f"Lower its daily budget by 15{NB}%"
    assert d.action_text({"type": "notify_only"}).startswith("Only notify")
    assert d.schedule_text({"interval_minutes": 1440}) == ["Once a day"]
    assert d.schedule_text({"interval_minutes": 30, "mode": "trigger"}) == [
        "As soon as new metrics arrive for an entity"]
    assert d.schedule_text({"mode": "cron", "cron": "0 9 * * 1-5", "interval_minutes": 15}) == [
        "At the times of the cron expression “0 9 * * 1-5” (each ad account's own time zone)"]
    assert d.protections_text({"cooldown_minutes": 0, "max_executions_per_day": 1}, "EUR") == [
        "No cooldown between changes to the same entity", "Changes one entity at most 1 time a day"]
    assert d.skip_text("outside_schedule", "Sat 23:00") == "outside the rule's time windows (Sat 23:00)"
    assert d.skip_text("something_new") == "something new"


def test_an_execution_joins_sent_and_planned_actions_and_names_entities() -> None:
    x = {"execution_id": "x", "started_at": "2026-12-06T10:00:00+00:00", "trigger": "manual", "result": "requested",
         "entities_evaluated": 2, "matched": 1, "skipped": 1, "skip_counts": {"cooldown": 1}, "actions_count": 1,
         "entities": [{"entity_id": "e1", "outcome": "failed", "snapshot": {"spend@today": 5_000.0},
                       "planned": [{"type": "increase_budget_pct", "from_cents": 1_000, "to_cents": 1_100,
                                    "currency": "EUR", "applied_pct": 10.0, "clamps": ["budget_change_limit"]}],
                       "skipped_actions": [{"type": "pause", "reason": "already_in_status", "detail": ""}],
                       "actions": [{"from_cents": 1_000, "to_cents": 1_100, "outcome": "failed", "error": "500"}]}],
         "skipped_entities": [{"entity_id": "e2", "reason": "cooldown", "detail": ""}]}
    v = d.execution_view(x, {"e1": "Berlin"}, {"conditions": [{"metric": "spend", "time_range": "today"}]}, None)
    assert (v["trigger"], v["result_text"], v["acted"]) == ("Evaluate now", "Changes requested", 1)
    (e,) = v["entities"]
    assert e["name"] == "Berlin" and e["outcome_text"] == "Failed"
    (change,) = e["changes"]
    assert change["text"] == f"daily budget €10.00 → €11.00 (+10{NB}%, limited by the rule's change limit)"
    assert (change["outcome_text"], change["error"]) == ("Failed", "500")
    assert e["skipped_actions"] == ["Pause it: already in that status"]
    assert e["snapshot"] == [("Spend today", "50.00 (account currency)")]
    assert v["skipped_entities"] == [{"name": "e2", "why": "in its cooldown"}]


def test_a_superseded_approval_is_explained_with_the_current_proposal() -> None:
    current = {"amount_cents": 40_000, "currency": "EUR", "source_channel": "CTV", "target_channel": "DISPLAY"}
    text = d.proposal_refusal(409, "proposal_superseded", {"current": current}, "EUR")
    assert "The current proposal moves €400.00 from CTV to DISPLAY" in text and text.startswith("Not approved")
    assert "no move is needed" in d.proposal_refusal(409, "proposal_superseded", {"current": None}, "EUR")
    assert d.proposal_refusal(422, "validation_failed", {"message": "amount 12000 cents too large"}, "EUR") == (
        "amount €120.00 too large")


def test_percentages_follow_the_locale() -> None:
    assert fmt.pct(86.114) == f"86.1{NB}%" and fmt.pct(-13.89, "de", signed=True) == f"−13,9{NB}%"
    assert fmt.number(1234.5, 2, "de") == "1.234,5" and fmt.day("2026-12-31T23:30:00+00:00", "Europe/Berlin") == (
        "1 Jan 2027")


def test_the_flight_chart_spans_the_flight_with_bands_around_the_expected_line() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = start + timedelta(days=10)
    expected = [(start, 0), (start + timedelta(days=5), 5_000), (end, 10_000)]
    actual = [(start, 0), (start + timedelta(days=5), 4_000)]
    c = charts.flight_chart(start, end, start + timedelta(days=5), expected, actual, (10, 25, 10, 25))
    assert c.top == 15_000, "room for the upper critical band (12,500), rounded to a nice number"
    left, right = c.left, c.left + c.plot_w
    assert c.expected.split()[0] == f"{float(left)},{float(c.top_px + c.plot_h)}"
    assert c.expected.split()[-1].startswith(f"{float(right)},")
    assert c.now_x == left + c.plot_w / 2 and len(c.dots) == 2 and c.dots[-1].value == 4_000
    assert len(c.warning_band.split()) == 6 and len(c.critical_band.split()) == 6
    assert [v for _, v in c.y_ticks] == [0, 3_750, 7_500, 11_250, 15_000]
    outside = charts.flight_chart(start, end, end + timedelta(days=1), expected, [], None)
    assert outside.now_x is None and outside.warning_band == "" and outside.actual == ""
