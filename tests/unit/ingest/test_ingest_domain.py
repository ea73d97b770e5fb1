"""Ingest's pure parts: hourly rows → UTC intervals (DST), Graph rows → metrics, fingerprints and ids, pacing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from allot.ingest.domain.errors import AccountProblem
from allot.ingest.domain.intervals import local_day_intervals, local_hour_interval, parse_hour_label, trailing_window
from allot.ingest.domain.mapping import (
    account_status,
    entity_status,
    fingerprint,
    map_insight_row,
    meta_offset,
    parse_entity,
    range_reach_by_entity,
    report_event_id,
    to_minor,
    write_scopes,
)
from allot.ingest.domain.ratelimit import PacePolicy, Usage, delay_before_next, parse_usage, throttled_wait

BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")


def _row(hour: int = 13, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "adset_id": "a1", "adset_name": "Prospecting", "campaign_id": "c1", "spend": "12.345",
        "impressions": "1000", "clicks": "17", "date_start": "2026-07-01", "date_stop": "2026-07-01",
        "actions": [{"action_type": "purchase", "value": "3"}, {"action_type": "link_click", "value": "9"}],
        "action_values": [{"action_type": "purchase", "value": "45.50"}],
        "hourly_stats_aggregated_by_advertiser_time_zone": f"{hour:02d}:00:00 - {hour:02d}:59:59",
    }
    row.update(over)
    return row


# ------------------------------------------------------------ intervals


def test_hour_label_parses_and_rejects_garbage() -> None:
    assert parse_hour_label("00:00:00 - 00:59:59") == 0
    assert parse_hour_label("23:00:00 - 23:59:59") == 23
    for bad in ("24:00:00 - 24:59:59", "13:00:00 - 14:59:59", "13:00", ""):
        with pytest.raises(ValueError):
            parse_hour_label(bad)


def test_local_hour_is_utc_interval_of_the_accounts_zone() -> None:
    start, end = local_hour_interval(date(2026, 7, 1), 13, LA)  # type: ignore[misc]
    assert start == datetime(2026, 7, 1, 20, tzinfo=UTC)  # PDT = UTC-7
    assert end - start == timedelta(hours=1)


@pytest.mark.parametrize(("day", "hours", "count"), [
    (date(2026, 3, 29), 23, 23),  # Europe/Berlin springs forward: 02:00 never happens
    (date(2026, 10, 25), 25, 24),  # falls back: the 02:00 label covers both passes
    (date(2026, 7, 1), 24, 24),
])
def test_a_local_day_tiles_exactly_including_dst_days(day: date, hours: int, count: int) -> None:
    ivs = local_day_intervals(day, BERLIN)
    assert len(ivs) == count
    assert ivs[-1][1] - ivs[0][0] == timedelta(hours=hours)
    assert sum((e - s for s, e in ivs), timedelta()) == timedelta(hours=hours)
    assert all(a[1] == b[0] for a, b in zip(ivs, ivs[1:], strict=False))  # no gap, no overlap


def test_dst_edge_hours() -> None:
    assert local_hour_interval(date(2026, 3, 29), 2, BERLIN) is None
    s, e = local_hour_interval(date(2026, 10, 25), 2, BERLIN)  # type: ignore[misc]
    assert (s, e) == (datetime(2026, 10, 25, 0, tzinfo=UTC), datetime(2026, 10, 25, 2, tzinfo=UTC))


def test_trailing_window_uses_the_accounts_today() -> None:
    now = datetime(2026, 7, 2, 3, tzinfo=UTC)  # still 1 July in Los Angeles
    assert trailing_window(now, LA, 7) == (date(2026, 6, 25), date(2026, 7, 1))
    assert trailing_window(now, BERLIN, 1) == (date(2026, 7, 2), date(2026, 7, 2))


# ------------------------------------------------------------ mapping


def test_row_maps_to_minor_units_conversions_and_utc() -> None:
    r = map_insight_row("adset", _row(), timezone_name="America/Los_Angeles", offset=100,
                        conversion_action="purchase")
    assert r is not None
    assert (r.entity_type, r.entity_id, r.parent_id, r.entity_name) == ("adset", "a1", "c1", "Prospecting")
    assert r.spend == 1235  # 12.345 → half up
    assert (r.impressions, r.clicks, r.conversions, r.revenue) == (1000, 17, 3, 4550)
    assert r.interval_start == datetime(2026, 7, 1, 20, tzinfo=UTC)


def test_offset_one_currency_and_campaign_level() -> None:
    r = map_insight_row("campaign", _row(spend="1500", action_values=[]), timezone_name="Asia/Tokyo", offset=1,
                        conversion_action="purchase")
    assert r is not None and (r.entity_id, r.parent_id, r.spend, r.revenue) == ("c1", None, 1500, 0)
    assert r.interval_start == datetime(2026, 7, 1, 4, tzinfo=UTC)


def test_skipped_hour_row_is_dropped_and_other_conversion_type_counts_nothing() -> None:
    assert map_insight_row("adset", _row(2, date_start="2026-03-29"), timezone_name="Europe/Berlin", offset=100,
                           conversion_action="purchase") is None
    r = map_insight_row("adset", _row(), timezone_name="UTC", offset=100, conversion_action="lead")
    assert r is not None and (r.conversions, r.revenue) == (0, 0)


def test_meta_offsets_and_unknown_currency() -> None:
    assert meta_offset("EUR") == 100 and meta_offset("HUF") == 1 and meta_offset("JPY") == 1
    with pytest.raises(AccountProblem, match="KWD"):
        meta_offset("KWD")
    with pytest.raises(AccountProblem, match="time zone"):
        map_insight_row("adset", _row(), timezone_name="Mars/Olympus", offset=100, conversion_action="purchase")
    assert to_minor("0.01", 100) == 1 and to_minor(None, 100) == 0


def test_status_and_scopes() -> None:
    assert (account_status(1), account_status(2), account_status(101), account_status(None)) == \
        ("active", "disabled", "closed", "unknown")
    assert (entity_status("ACTIVE"), entity_status("CAMPAIGN_PAUSED"), entity_status("ARCHIVED")) == \
        ("active", "paused", "deleted")
    assert write_scopes(["ads_read", "read_insights"]) == []
    assert write_scopes(["ads_read", "ads_management", "business_management"]) == ["ads_management",
                                                                                   "business_management"]
    e = parse_entity("adset", {"id": "a1", "name": "n", "effective_status": "ACTIVE", "daily_budget": "2500",
                               "campaign_id": "c1"})
    assert (e.daily_budget, e.lifetime_budget, e.parent_id, e.status) == (2500, None, "c1", "active")


def test_fingerprint_and_ids_are_deterministic_and_change_with_numbers() -> None:
    kw = {"timezone_name": "UTC", "offset": 100, "conversion_action": "purchase"}
    a = map_insight_row("adset", _row(), **kw)  # type: ignore[arg-type]
    b = map_insight_row("adset", _row(actions=[{"action_type": "purchase", "value": "4"}]), **kw)  # type: ignore[arg-type]
    assert a is not None and b is not None
    e1 = parse_entity("adset", {"id": "a1", "effective_status": "ACTIVE", "daily_budget": "2500"})
    e2 = parse_entity("adset", {"id": "a1", "effective_status": "ACTIVE", "daily_budget": "3000"})
    assert fingerprint(a, e1, latest=False) == fingerprint(a, e2, latest=False)  # history ignores budget
    assert fingerprint(a, e1, latest=True) != fingerprint(a, e2, latest=True)  # latest carries the budget
    assert fingerprint(a, e1, latest=False) != fingerprint(b, e1, latest=False)  # a restatement
    fp = fingerprint(a, e1, latest=False)
    assert report_event_id("ws", "1", a, fp) == report_event_id("ws", "1", a, fp)
    assert report_event_id("ws", "1", a, fp) != report_event_id("ws2", "1", a, fp)


def test_fingerprint_of_the_latest_interval_carries_the_range_reach_only_when_given() -> None:
    a = map_insight_row("adset", _row(), timezone_name="UTC", offset=100, conversion_action="purchase")
    assert a is not None
    e = parse_entity("adset", {"id": "a1", "effective_status": "ACTIVE"})
    monday, tuesday = (("through", "2026-07-01"), ("last_7d", 900)), (("through", "2026-07-02"), ("last_7d", 950))
    assert fingerprint(a, e, latest=True, range_reach=()) == fingerprint(a, e, latest=True)  # unchanged without
    assert fingerprint(a, e, latest=True, range_reach=monday) != fingerprint(a, e, latest=True, range_reach=tuesday)
    assert fingerprint(a, e, latest=False, range_reach=monday) == fingerprint(a, e, latest=False)


def test_range_reach_rows_by_entity_listed_without_a_row_reached_nobody() -> None:
    rows = {("adset", "last_7d"): [{"adset_id": "a1", "reach": "900", "date_start": "2026-06-25"}],
            ("adset", "last_3d"): [{"adset_id": "a1", "reach": "400"}, {"adset_id": "a2"}],
            ("campaign", "last_7d"): [{"campaign_id": "c1", "reach": "1500"}]}
    out = range_reach_by_entity(rows, [("adset", "a1"), ("adset", "a2"), ("adset", "a3")])
    assert out[("adset", "a1")] == {"yesterday": 0, "last_3d": 400, "last_7d": 900, "last_14d": 0, "last_30d": 0}
    assert out[("adset", "a2")]["last_3d"] is None  # a row without reach: not reported
    assert out[("adset", "a3")] == dict.fromkeys(("yesterday", "last_3d", "last_7d", "last_14d", "last_30d"), 0)
    assert out[("campaign", "c1")]["last_7d"] == 1_500


# ------------------------------------------------------------ rate limits


def test_usage_headers_parse_to_the_highest_percentage_and_regain_time() -> None:
    u = parse_usage({
        "x-business-use-case-usage": '{"act_1": [{"type": "ads_insights", "call_count": 40, "total_cputime": 81,'
                                     ' "total_time": 12, "estimated_time_to_regain_access": 2}]}',
        "x-ad-account-usage": '{"acc_id_util_pct": 55, "reset_time_duration": 30}',
        "x-fb-ads-insights-throttle": '{"app_id_util_pct": 20, "acc_id_util_pct": 66}',
    })
    assert u == Usage(pct=81.0, regain_s=120.0)
    assert parse_usage({"x-ad-account-usage": "not json"}) == Usage()


def test_pace_slows_before_the_limit_and_waits_when_throttled() -> None:
    p = PacePolicy(slow_at=75, max_delay_s=60)
    assert delay_before_next(Usage(50), p) == 0
    assert delay_before_next(Usage(87.5), p) == pytest.approx(30)
    assert delay_before_next(Usage(100), p) == 60
    assert delay_before_next(Usage(10, regain_s=300), p) == 300
    assert throttled_wait(80000, Usage(100, 120), p) == 120
    assert throttled_wait(17, Usage(), p) == 60
    assert throttled_wait(100, Usage(100, 120), p) is None
