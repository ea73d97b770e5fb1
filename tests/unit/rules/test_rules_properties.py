"""Property tests: operators never contradict each other; range aggregates equal the sum of their days, reach
excepted (never summed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from allot.rules.domain import (
    REACH_NOT_REPORTED,
    AggregateCache,
    DailyCounters,
    Entity,
    compare,
    resolve_range,
    sum_counters,
)
from allot.rules.domain.timeranges import TIME_RANGES

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@given(finite, finite)
def test_operators_partition_the_number_line(value: float, threshold: float) -> None:
    assert compare("gt", value, threshold) != compare("lte", value, threshold)
    assert compare("lt", value, threshold) != compare("gte", value, threshold)
    assert compare("eq", value, threshold) != compare("neq", value, threshold)
    assert compare("between", value, threshold, threshold) == compare("eq", value, threshold)


counters = st.builds(
    DailyCounters,
    spend_cents=st.integers(0, 10**7), impressions=st.integers(0, 10**7), clicks=st.integers(0, 10**5),
    conversions=st.integers(0, 10**3), revenue_cents=st.integers(0, 10**8), reach=st.integers(0, 10**6),
)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(-3, 40), counters, max_size=40),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_range_aggregates_equal_the_sum_of_the_days_in_the_range(by_offset: dict[int, DailyCounters],
                                                                 now: datetime) -> None:
    today = now.date()
    buckets = {today - timedelta(days=k): c for k, c in by_offset.items()}
    entity = Entity("e", "adset", "meta", "a", "n", "active", "USD", 100, buckets)
    ranges = AggregateCache(now).ranges_for(entity)
    for name in TIME_RANGES:
        span = resolve_range(name, now)
        total = sum_counters([c for d, c in buckets.items() if d in span])
        assert ranges[name]._replace(reach=0) == total._replace(reach=0)
        if span.days > 1:  # without the platform's range reach: nobody if nothing was shown, else not computable
            assert ranges[name].reach == (0 if total.impressions == 0 else REACH_NOT_REPORTED)
