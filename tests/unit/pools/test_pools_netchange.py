"""Plans stay inside the guardrails' rolling net-change budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from allot.pools.domain.netchange import budget_at_window_start, narrow, net_change_bounds

T = datetime(2026, 11, 4, tzinfo=UTC)


def test_without_changes_the_window_starts_at_the_current_budget() -> None:
    assert budget_at_window_start(5_000, []) == 5_000
    assert net_change_bounds(5_000, [], 20) == (4_000, 6_000)


def test_the_window_starts_before_the_earliest_change_in_it() -> None:
    changes = [(T + timedelta(hours=10), 4_000, 3_500), (T, 5_000, 4_000)]
    assert budget_at_window_start(3_500, changes) == 5_000
    assert net_change_bounds(3_500, changes, 20) == (3_500, 6_000), "already -1500: may not go lower"


@pytest.mark.parametrize(("start", "pct", "expected"), [(5_001, 20, (4_001, 6_001)), (999, 20, (800, 1_198))])
def test_the_limit_is_rounded_down_to_the_cent(start: int, pct: int, expected: tuple[int, int]) -> None:
    assert net_change_bounds(start, [], pct) == expected


def test_bounds_always_contain_the_current_budget() -> None:
    moved_by_someone_else = [(T, 5_000, 8_000)]
    assert net_change_bounds(8_000, moved_by_someone_else, 20) == (4_000, 8_000)


@pytest.mark.parametrize(("lo", "hi", "bounds", "expected"), [
    (None, None, (4_000, 6_000), (4_000, 6_000)),
    (4_500, 9_000, (4_000, 6_000), (4_500, 6_000)),
    (7_000, 9_000, (4_000, 6_000), (4_000, 6_000)),
])
def test_narrow_intersects_configured_and_window_bounds(lo: int | None, hi: int | None, bounds: tuple[int, int],
                                                      expected: tuple[int, int]) -> None:
    assert narrow(lo, hi, bounds) == expected
