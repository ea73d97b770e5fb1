"""Money in plan explanations is formatted from integer cents, never through floats."""

from __future__ import annotations

import random

import pytest

from allot.pools.domain._kernels import money


@pytest.mark.parametrize(("cents", "text"), [
    (0, "0.00"), (5, "0.05"), (-5, "-0.05"), (100, "1.00"), (-100, "-1.00"), (123_456_789, "1,234,567.89"),
    (-123_456_789, "-1,234,567.89"), (10**17 + 1, "1,000,000,000,000,000.01"),
])
def test_money_text(cents: int, text: str) -> None:
    assert money(cents) == text


def test_money_matches_the_two_decimal_rendering_of_the_amount() -> None:
    rng = random.Random(7)
    for cents in [rng.randint(-10**10, 10**10) for _ in range(20_000)]:
        assert money(cents) == f"{cents / 100:,.2f}"
