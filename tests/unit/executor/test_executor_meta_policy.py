"""Pure Meta policies: usage-header parsing and throttling, and the Graph API version's expiry on a given day."""

from __future__ import annotations

import json
from datetime import date

import pytest

from allot.contracts.platforms import META_API_VERSIONS, META_DEFAULT_API_VERSION, check_meta_api_version
from allot.executor.adapters.meta_usage import (
    APP_KEY,
    ThrottlePolicy,
    UsageReading,
    UsageTracker,
    is_throttle_code,
    parse_usage,
)

# ---------------------------------------------------------------- usage headers


def _buc(key: str, **entry: object) -> str:
    return json.dumps({key: [{"type": "ads_management", **entry}]})


def test_parses_all_three_documented_headers() -> None:
    headers = {
        "X-Business-Use-Case-Usage": _buc("act_1001", call_count=40, total_cputime=12, total_time=55,
                                          estimated_time_to_regain_access=0),
        "x-ad-account-usage": json.dumps({"acc_id_util_pct": 61.5, "reset_time_duration": 100,
                                          "ads_api_access_tier": "standard_access"}),
        "x-app-usage": json.dumps({"call_count": 7, "total_time": 3, "total_cputime": 2}),
    }
    got = parse_usage(headers, "act_1001")
    assert got == {"1001": UsageReading(61.5, None), APP_KEY: UsageReading(7.0, None)}


def test_regain_minutes_become_seconds_and_reset_time_counts_only_at_the_limit() -> None:
    got = parse_usage({"x-business-use-case-usage": _buc("1001", call_count=100, estimated_time_to_regain_access=3)},
                      "1001")
    assert got["1001"] == UsageReading(100.0, 180.0)
    full = parse_usage({"x-ad-account-usage": json.dumps({"acc_id_util_pct": 100, "reset_time_duration": 42})}, "1001")
    assert full["1001"] == UsageReading(100.0, 42.0)
    low = parse_usage({"x-ad-account-usage": json.dumps({"acc_id_util_pct": 10, "reset_time_duration": 42})}, "1001")
    assert low["1001"] == UsageReading(10.0, None)


@pytest.mark.parametrize("value", ["", "not json", "[1, 2]", json.dumps({"1001": "x"}), json.dumps({"1001": [3]})])
def test_garbage_headers_are_ignored_never_raise(value: str) -> None:
    assert parse_usage({"x-business-use-case-usage": value, "x-app-usage": value}, "1001") == {}


@pytest.mark.parametrize(("code", "throttle"), [(4, True), (17, True), (32, True), (613, True), (80000, True),
                                                (80004, True), (80014, True), (80015, False), (100, False),
                                                (190, False), (None, False)])
def test_throttle_codes(code: int | None, throttle: bool) -> None:
    assert is_throttle_code(code) is throttle


# ---------------------------------------------------------------- the policy


@pytest.mark.parametrize(("pct", "spacing"), [(0, 0.0), (74.9, 0.0), (75, 0.0), (87.5, 10.0), (100, 20.0),
                                              (130, 20.0)])
def test_spacing_grows_linearly_from_the_threshold(pct: float, spacing: float) -> None:
    assert ThrottlePolicy(slow_at_pct=75, max_spacing_s=20).spacing_s(pct) == pytest.approx(spacing)


@pytest.mark.parametrize("kwargs", [{"slow_at_pct": 0}, {"slow_at_pct": 100}, {"max_spacing_s": -1},
                                    {"blocked_default_s": 0}])
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(**kwargs)


def test_calls_go_at_once_below_the_threshold_and_are_spaced_above_it() -> None:
    tracker = UsageTracker(ThrottlePolicy(slow_at_pct=75, max_spacing_s=20))
    tracker.record_call("act_1", now=100.0)
    tracker.observe({"1": UsageReading(50.0)}, now=100.5)
    assert tracker.wait_s("act_1", now=100.5) == 0
    tracker.observe({"1": UsageReading(90.0)}, now=101.0)       # spacing 12 s from the last call at 100
    assert tracker.wait_s("act_1", now=101.0) == pytest.approx(11.0)
    assert tracker.wait_s("1", now=112.0) == 0
    assert tracker.wait_s("act_2", now=101.0) == 0               # another account is not held back


def test_limit_reached_holds_the_account_until_access_is_regained() -> None:
    tracker = UsageTracker()
    tracker.observe({"1": UsageReading(100.0, 180.0)}, now=0.0)
    assert tracker.wait_s("1", now=60.0) == pytest.approx(120.0)
    assert tracker.wait_s("1", now=181.0) == 0


def test_a_throttling_error_holds_the_account_or_the_whole_app() -> None:
    tracker = UsageTracker(ThrottlePolicy(blocked_default_s=60))
    assert tracker.throttled("act_1", now=0.0, regain_s=None) == 60.0
    assert tracker.wait_s("1", now=10.0) == pytest.approx(50.0) and tracker.wait_s("2", now=10.0) == 0
    assert tracker.throttled("act_3", now=0.0, regain_s=300.0, app_wide=True) == 300.0    # code 4: app limit
    assert tracker.wait_s("2", now=10.0) == pytest.approx(290.0)


# ---------------------------------------------------------------- Graph API versions

TODAY = date(2026, 12, 5)


def test_the_default_version_is_inside_metas_window_today() -> None:
    check = check_meta_api_version(META_DEFAULT_API_VERSION, TODAY)
    assert check.state == "supported" and not check.needs_attention
    assert META_API_VERSIONS[META_DEFAULT_API_VERSION][0] <= TODAY


@pytest.mark.parametrize(
    ("version", "today", "state", "days_left"),
    [
        ("v21.0", TODAY, "expired", -452),              # the old default: expired 2025-09-09
        ("v24.0", TODAY, "expired", -25),               # 2026-11-10
        ("v24.0", date(2026, 11, 10), "expired", 0),    # expiry day itself: calls fail
        ("v25.0", TODAY, "supported", 80),              # 2027-02-23
        ("v25.0", date(2026, 12, 24), "supported", 61),
        ("v25.0", date(2026, 12, 25), "expiring", 60),  # 60 days before: the warning starts
        ("v25.0", date(2027, 2, 22), "expiring", 1),
        ("v26.0", TODAY, "supported", None),            # no expiry published
        ("v18.0", TODAY, "expired", None),              # older than the table
        ("v99.0", TODAY, "unknown", None),
        ("latest", TODAY, "unknown", None),
    ],
)
def test_version_state_on_a_given_day(version: str, today: date, state: str, days_left: int | None) -> None:
    check = check_meta_api_version(version, today)
    assert (check.state, check.days_left) == (state, days_left)
    assert version in check.message
    if state in ("expired", "expiring"):
        assert check.needs_attention and META_DEFAULT_API_VERSION in check.message


def test_warning_window_is_configurable() -> None:
    assert check_meta_api_version("v25.0", TODAY, warn_days=80).state == "expiring"
    assert check_meta_api_version("v25.0", TODAY, warn_days=79).state == "supported"
