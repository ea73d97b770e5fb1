"""Numbers in plan explanations: money from integer cents (never through floats), other numbers exactly as the %-format."""

from __future__ import annotations

import math
import random
import struct

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


# The arithmetic path (pure and compiled) and fixed() as the engine runs it when compiled; interpreted, fixed() IS
# the %-format, so comparing it with the %-format would test nothing.
_FIXED_CASES = [pytest.param(_kernels.fixed_arith, id="python-arith")]
if estimate.kernels.COMPILED:
    _FIXED_CASES += [pytest.param(estimate.kernels.fixed, id="native"), pytest.param(estimate.kernels.fixed_arith, id="native-arith")]
FIXED = pytest.mark.parametrize("fixed", _FIXED_CASES)


@FIXED
@pytest.mark.parametrize("decimals", [0, 1, 2])
def test_fixed_is_exactly_the_percent_format(fixed, decimals: int) -> None:  # type: ignore[no-untyped-def]
    """Explanation numbers: fixed(x, d) == "%.{d}f" % x, including ties, signs of zero, nan, inf and huge values."""
    rng = random.Random(decimals)
    special = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 0.125, -0.125, 2.675, 0.005, -0.001, 0.994999, 99.995, 0.05, 0.15, 0.25, 0.35,
               1e9, -1e9, 999_999_999.995, 1e300, -1e-300, math.inf, -math.inf, math.nan, 5e-324]
    values = special + [rng.uniform(-10, 10) for _ in range(50_000)] + [rng.uniform(-1e9, 1e9) for _ in range(20_000)]
    # Near ties: multiples of a tenth of the last kept digit (every exact half among them), and their neighbours one ulp away.
    for _ in range(20_000):
        x = rng.randrange(-2_000_000, 2_000_000) / 2000 * (10 ** (2 - decimals))
        values += [x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf)]
    # Arbitrary bit patterns (any exponent, subnormals, nan payloads).
    values += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    for x in values:
        assert fixed(x, decimals) == "%.*f" % (decimals, x), x


@pytest.mark.parametrize("kernels", [_kernels, estimate.kernels], ids=["python", estimate.KERNELS])
def test_signed_one_decimal_is_exactly_the_percent_format(kernels) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    for x in [0.0, -0.0, 0.05, -0.05, 0.25, math.inf, -math.inf, math.nan] + [rng.uniform(-50, 50) for _ in range(20_000)]:
        assert kernels.signed1(x) == "%+.1f" % x, x


def test_compiled_flag_tells_which_module_runs() -> None:
    assert _kernels.COMPILED is False
    assert estimate.kernels.COMPILED is (estimate.KERNELS == "native")
