"""Cron schedules: parsing errors, next / previous fire times in an account's zone, DST gaps and repeats, due or
not due, the ``schedule`` model's cron fields, and dayparts read at the fire time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from allot.rules.domain import (
    CronError,
    CronFire,
    DailyCounters,
    Entity,
    SkipReason,
    due_fire,
    due_fires,
    evaluate_rule,
    next_fire,
    parse_cron,
    previous_fire,
    validate_rule,
)

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1, UTC+2 in summer (2026: from 29 March 02:00 to 25 October 03:00)
NEW_YORK = ZoneInfo("America/New_York")  # UTC-5, UTC-4 in summer
TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9, no DST
WEEKDAYS_9 = "0 9 * * 1-5"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(("expr", "normalised"), [
    ("0 9 * * 1-5", "0 9 * * 1-5"),
    ("  0   9 * *   MON-FRI ", "0 9 * * MON-FRI"),
    ("*/15 9-17 * * mon,wed,fri", "*/15 9-17 * * mon,wed,fri"),
    ("30 6 1,15 JAN-MAR,oct *", "30 6 1,15 JAN-MAR,oct *"),
    ("0 0 * * 7", "0 0 * * 7"),
    ("5 4 L * *", "5 4 L * *"),
    ("0 8 * * MON#1", "0 8 * * MON#1"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("55 23 * * *", "55 23 * * *"),
    ("58 23,0 * * *", "58 23,0 * * *"),  # 23:58 then 00:58: an hour apart
])
def test_valid_expressions_are_accepted_with_whitespace_normalised(expr: str, normalised: str) -> None:
    assert parse_cron(expr) == normalised


@pytest.mark.parametrize(("expr", "says"), [
    ("", "is empty; expected 5 fields"),
    ("0 9 * *", "has 4 fields; expected 5 (minute hour day-of-month month day-of-week)"),
    ("0 0 9 * * 1-5", "has 6 fields; expected 5"),
    ("@daily", "macros (@daily, @hourly, ...) are not supported"),
    ("61 9 * * *", "minute field '61' is not valid; allowed: 0-59"),
    ("0 24 * * *", "hour field '24' is not valid; allowed: 0-23"),
    ("0 9 0 * *", "day-of-month field '0' is not valid; allowed: 1-31"),
    ("0 9 * 13 *", "month field '13' is not valid; allowed: 1-12 or JAN-DEC"),
    ("0 9 * FOO *", "month field 'FOO' is not valid"),
    ("0 9 * * 8", "day-of-week field '8' is not valid; allowed: 0-7 or SUN-SAT"),
    ("0 9 * * FRI-MON", "day-of-week field 'FRI-MON' is not valid"),
    ("*/0 9 * * *", "minute field '*/0' is not valid"),
    ("0 0 31 4 *", "day-of-month '31' never occurs in month '4'"),
    ("0 0 30 2 *", "day-of-month '30' never occurs in month '2'"),
    ("* * * * *", "fires 1 minute apart (00:00 and 00:01); a cron rule fires at most every 5 minutes"),
    ("0,2 9 * * *", "fires 2 minutes apart (09:00 and 09:02)"),
])
def test_invalid_expressions_say_what_is_wrong(expr: str, says: str) -> None:
    with pytest.raises(CronError) as err:
        parse_cron(expr)
    assert says in str(err.value), str(err.value)


def test_the_gap_check_spans_midnight() -> None:
    with pytest.raises(CronError, match=r"fires 2 minutes apart \(23:58 and 00:00\)"):
        parse_cron("0,58 0,23 * * *")


# ---------------------------------------------------------------- next / previous fire in a zone


@pytest.mark.parametrize(("zone", "after", "expected"), [
    # Friday 15 May 2026 12:00 UTC: Berlin's next weekday 09:00 is Monday 18 May 07:00 UTC
    (BERLIN, utc(2026, 5, 15, 12), utc(2026, 5, 18, 7)),
    # ... but New York's Friday 09:00 (13:00 UTC) is still ahead
    (NEW_YORK, utc(2026, 5, 15, 12), utc(2026, 5, 15, 13)),
    # Tokyo's Saturday 09:00 is excluded: Monday 09:00 JST = Monday 00:00 UTC
    (TOKYO, utc(2026, 5, 15, 12), utc(2026, 5, 18, 0)),
    # strictly after: a fire time exactly at ``after`` is not the next one
    (BERLIN, utc(2026, 5, 18, 7), utc(2026, 5, 19, 7)),
    # in winter Berlin is UTC+1
    (BERLIN, utc(2026, 1, 5, 0), utc(2026, 1, 5, 8)),
])
def test_next_fire_reads_the_expression_in_the_zone(zone: ZoneInfo, after: datetime, expected: datetime) -> None:
    assert next_fire(WEEKDAYS_9, after, zone) == expected


def test_previous_fire_counts_a_fire_exactly_at_the_instant_and_skips_excluded_days() -> None:
    monday_9 = utc(2026, 5, 18, 7)  # 09:00 in Berlin
    assert previous_fire(WEEKDAYS_9, monday_9, BERLIN) == monday_9
    assert previous_fire(WEEKDAYS_9, monday_9 + timedelta(microseconds=1), BERLIN) == monday_9
    # one second before Monday 09:00: the latest is Friday's (the weekend is excluded)
    assert previous_fire(WEEKDAYS_9, monday_9 - timedelta(seconds=1), BERLIN) == utc(2026, 5, 15, 7)


def test_fire_times_need_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(WEEKDAYS_9, datetime(2026, 5, 18, 7), BERLIN)


# ---------------------------------------------------------------- DST (Debian cron's behaviour, through cronsim)


def test_a_fixed_time_the_spring_forward_skips_fires_once_at_the_first_valid_instant() -> None:
    """29 March 2026 in Berlin: 02:00 → 03:00. 02:30 does not exist that night: it fires at 03:00 (01:00 UTC)."""
    fires = [next_fire("30 2 * * *", utc(2026, 3, 28, 12), BERLIN)]
    while len(fires) < 3:
        fires.append(next_fire("30 2 * * *", fires[-1], BERLIN))  # type: ignore[arg-type]
    assert fires == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]
    assert previous_fire("30 2 * * *", utc(2026, 3, 29, 1), BERLIN) == utc(2026, 3, 29, 1)
    assert previous_fire("30 2 * * *", utc(2026, 3, 29, 0, 59, 59), BERLIN) == utc(2026, 3, 28, 1, 30)


def test_a_fixed_time_the_fall_back_repeats_fires_once_on_its_first_occurrence() -> None:
    """25 October 2026 in Berlin: 03:00 → 02:00, so 02:30 happens at 00:30 UTC and again at 01:30 UTC."""
    first = utc(2026, 10, 25, 0, 30)
    assert next_fire("30 2 * * *", utc(2026, 10, 24, 12), BERLIN) == first
    assert next_fire("30 2 * * *", first, BERLIN) == utc(2026, 10, 26, 1, 30)  # not 01:30 UTC on the 25th
    # asked during the second 02:xx, the latest fire is the first occurrence (not yesterday's)
    assert previous_fire("40 2 * * *", utc(2026, 10, 25, 1, 20), BERLIN) == utc(2026, 10, 25, 0, 40)
    assert due_fire("30 2 * * *", BERLIN, since=first, now=utc(2026, 10, 25, 2)) is None


def test_a_stepped_expression_follows_the_wall_clock_through_both_transitions() -> None:
    """*/30: nothing in the skipped hour, both passes of the repeated hour."""
    spring, fall = [], []
    at, end = utc(2026, 3, 28, 23, 59), utc(2026, 3, 29, 2)
    while (at := next_fire("*/30 * * * *", at, BERLIN)) and at <= end:  # type: ignore[assignment]
        spring.append(at.astimezone(BERLIN).strftime("%H:%M%z"))
    assert spring == ["01:00+0100", "01:30+0100", "03:00+0200", "03:30+0200", "04:00+0200"]
    at, end = utc(2026, 10, 24, 23, 59), utc(2026, 10, 25, 2)
    while (at := next_fire("*/30 * * * *", at, BERLIN)) and at <= end:  # type: ignore[assignment]
        fall.append(at.astimezone(BERLIN).strftime("%H:%M%z"))
    assert fall == ["02:00+0200", "02:30+0200", "02:00+0100", "02:30+0100", "03:00+0100"]


# ---------------------------------------------------------------- due / not due


@pytest.mark.parametrize(("since", "now", "due"), [
    # Monday 18 May: 09:00 in Berlin is 07:00 UTC
    (utc(2026, 5, 18, 6), utc(2026, 5, 18, 6, 59, 59), None),  # not yet
    (utc(2026, 5, 18, 6), utc(2026, 5, 18, 7), utc(2026, 5, 18, 7)),  # at the fire time
    (utc(2026, 5, 18, 6), utc(2026, 5, 18, 7, 0, 3), utc(2026, 5, 18, 7)),  # a scan a few seconds later
    (utc(2026, 5, 18, 7), utc(2026, 5, 18, 12), None),  # already evaluated: since is that fire time
    (utc(2026, 5, 16, 6), utc(2026, 5, 17, 12), None),  # the weekend: no fire time in the window
    # the scheduler was down from Friday to Tuesday noon: the latest fire runs once, late (not each missed one)
    (utc(2026, 5, 15, 6), utc(2026, 5, 19, 12), utc(2026, 5, 19, 7)),
])
def test_due_fire_is_the_latest_fire_time_in_since_now(since: datetime, now: datetime,
                                                       due: datetime | None) -> None:
    assert due_fire(WEEKDAYS_9, BERLIN, since=since, now=now) == due


def test_due_fires_group_accounts_by_the_instant_their_local_time_fires() -> None:
    """09:00 in Berlin and Paris is one instant (07:00 UTC), in UTC 09:00, in New York 13:00 UTC; at 10:00 UTC
    New York's 09:00 of today has not come yet and its latest (Friday's) is before ``since``."""
    zones = {"berlin": BERLIN, "paris": ZoneInfo("Europe/Paris"), "london": ZoneInfo("Europe/London"),
             "utc": ZoneInfo("UTC"), "ny": NEW_YORK}
    since, now = utc(2026, 5, 18, 0), utc(2026, 5, 18, 10)
    assert due_fires(WEEKDAYS_9, zones, since=since, now=now) == (
        CronFire(utc(2026, 5, 18, 7), ("berlin", "paris")),
        CronFire(utc(2026, 5, 18, 8), ("london",)),
        CronFire(utc(2026, 5, 18, 9), ("utc",)),
    )
    # once those are done (since = the last one), only New York's comes, at 13:00 UTC
    assert due_fires(WEEKDAYS_9, zones, since=utc(2026, 5, 18, 9), now=utc(2026, 5, 18, 12, 59)) == ()
    assert due_fires(WEEKDAYS_9, zones, since=utc(2026, 5, 18, 9), now=utc(2026, 5, 18, 13)) == (
        CronFire(utc(2026, 5, 18, 13), ("ny",)),)


def test_due_fires_is_the_same_for_the_same_inputs() -> None:
    zones = {"a": BERLIN, "b": TOKYO}
    args: dict[str, Any] = {"since": utc(2026, 5, 17), "now": utc(2026, 5, 18, 8)}
    assert due_fires(WEEKDAYS_9, zones, **args) == due_fires(WEEKDAYS_9, dict(reversed(zones.items())), **args)


# ---------------------------------------------------------------- the schedule model


def rule(schedule: dict[str, Any]) -> Any:
    return validate_rule({
        "name": "weekday mornings", "scope": {"ad_account_ids": ["act_1"], "entity_level": "adset"},
        "conditions": [{"metric": "spend", "operator": "gte", "value": 0, "time_range": "yesterday"}],
        "actions": [{"type": "notify_only"}], "schedule": schedule})


def schedule_error(schedule: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as err:
        rule(schedule)
    (e,) = err.value.errors()
    return e["loc"], e["msg"]


def test_a_cron_schedule_is_stored_normalised_and_a_cron_without_mode_means_cron() -> None:
    explicit = rule({"mode": "cron", "cron": " 0 9  * * 1-5"}).schedule
    implied = rule({"cron": "0 9 * * 1-5"}).schedule
    assert (explicit.mode, explicit.cron) == (implied.mode, implied.cron) == ("cron", "0 9 * * 1-5")
    assert rule({"mode": "cron", "cron": "0 9 * * 1-5", "interval_minutes": 60}).schedule.interval_minutes == 60


@pytest.mark.parametrize(("schedule", "says"), [
    ({"mode": "cron"}, "required when mode is 'cron'"),
    ({"mode": "cron", "cron": None}, "required when mode is 'cron'"),
    ({"mode": "schedule", "cron": "0 9 * * *"}, "only used with mode 'cron' (mode is 'schedule')"),
    ({"mode": "trigger", "cron": "0 9 * * *"}, "only used with mode 'cron' (mode is 'trigger')"),
    ({"mode": "cron", "cron": "0 9 * * 1-8"}, "'0 9 * * 1-8': day-of-week field '1-8' is not valid"),
    ({"cron": "0 9 * *"}, "'0 9 * *': has 4 fields; expected 5"),
])
def test_a_bad_cron_schedule_names_schedule_cron(schedule: dict[str, Any], says: str) -> None:
    loc, msg = schedule_error(schedule)
    assert loc == ("schedule", "cron") and says in msg, (loc, msg)


def test_dayparts_of_a_cron_rule_are_read_at_the_fire_time() -> None:
    """09:00 fire, window 09:00-09:01: an evaluation a few seconds past the window still acts for the fire time
    (and the same evaluation without the fire time is outside the window)."""
    weekday = rule({"mode": "cron", "cron": "0 9 * * 1-5",
                    "dayparts": [{"days": ["mon"], "start": "09:00", "end": "09:01"}]})
    fire, now = utc(2026, 5, 18, 7), utc(2026, 5, 18, 7, 1, 5)
    counters = DailyCounters(spend_cents=100, revenue_cents=0, conversions=0, impressions=10, reach=5)
    entity = Entity(entity_id="e1", entity_level="adset", platform="meta", ad_account_id="act_1", name="e1",
                    status="active", currency="EUR", daily_budget_cents=1_000, zone=BERLIN,
                    buckets={date(2026, 5, 17): counters})
    assert [m.entity_id for m in evaluate_rule(weekday, [entity], None, now, schedule_at=fire).matched] == ["e1"]
    late = evaluate_rule(weekday, [entity], None, now)
    assert [s.reason for s in late.skipped] == [SkipReason.OUTSIDE_SCHEDULE]
