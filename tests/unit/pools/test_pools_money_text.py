"""Money in plan explanations is formatted from integer cents, never through floats."""

from __future__ import annotations

import random

import pytest

from allot.pools.domain import _kernels, estimate

# The pure-Python kernels and the ones the engine runs (the compiled copy when it is built).
MONEY = pytest.mark.parametrize("money", [_kernels.money, estimate.kernels.money], ids=["python", estimate.KERNELS])


@pytest.mark.parametrize(("cents", "text"), [
    (0, "0.00"), (5, "0.05"), (-5, "-0.05"), (100, "1.00"), (-100, "-1.00"), (123_456_789, "1,234,567.89"),
    (-123_456_789, "-1,234,567.89"), (10**17 + 1, "1,000,000,000,000,000.01"), (99_999, "999.99"), (100_000, "1,000.00"),
    (-100_000, "-1,000.00"), (1_000_000, "10,000.00"), (10_000_000, "100,000.00"),
])
@MONEY
def test_money_text(money, cents: int, text: str) -> None:  # type: ignore[no-untyped-def]
    assert money(cents) == text


@MONEY
def test_money_matches_the_two_decimal_rendering_of_the_amount(money) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    for cents in [rng.randint(-10**10, 10**10) for _ in range(20_000)]:
        assert money(cents) == f"{cents / 100:,.2f}"
    # Beyond 2**53 cents a float cannot hold the amount; the text is still exact.
    for cents in [rng.randint(-10**25, 10**25) for _ in range(2_000)]:
        units, rest = divmod(abs(cents), 100)
        assert money(cents) == f"{'-' if cents < 0 else ''}{units:,}.{rest:02d}"
