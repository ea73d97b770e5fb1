"""The guardrails' net-change window (``MemberState.window_*``) bounds where a plan may move a member, not where it
should end up: its target stays planned on its floor and ceiling, so money the window keeps from a strong member is
not parked on another one (to be taken back when the window reopens), and balancing never pushes a member past its
own target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from allot.pools.domain import MemberState, MetricInterval, PoolSettings, plan_allocation

NOW = datetime(2024, 1, 31, tzinfo=UTC)
POOL = PoolSettings(pool_id="t", daily_budget_cents=75_000, persistence_intervals=1, cooldown_hours=0,
                    exploration_share=0.0)
ROAS = {"strong": 6.0, "middle": 3.0, "weak": 1.0}
HISTORY = {m: [MetricInterval(NOW - timedelta(hours=8 * (k + 1)), NOW - timedelta(hours=8 * k), 8_333,
                              int(8_333 * r), 8_333 * r / 2_000) for k in range(60)] for m, r in ROAS.items()}


def plan(strong: MemberState) -> dict[str, tuple[int, int | None, str]]:
    members = [strong, MemberState("middle", 25_000), MemberState("weak", 25_000)]
    out = plan_allocation(POOL, members, HISTORY, now=NOW)
    assert sum(a.new_budget_cents for a in out.allocations) == 75_000
    return {a.member_id: (a.new_budget_cents, a.target_cents, a.reason) for a in out.allocations}


def test_a_member_whose_window_is_used_up_keeps_its_target_and_nobody_is_pushed_past_theirs() -> None:
    lines = plan(MemberState("strong", 25_000, window_min_cents=20_000, window_max_cents=25_000))
    strong, middle, weak = lines["strong"], lines["middle"], lines["weak"]
    assert strong[0] == 25_000, "the window allows no increase"
    assert strong[1] is not None and strong[1] > 40_000, "its target is where it should end up, beyond the window"
    assert middle[1] is not None and 25_000 < middle[0] <= middle[1], "the middle member takes money up to its target"
    assert weak[0] == 75_000 - 25_000 - middle[0] < 25_000


def test_the_same_member_with_the_window_as_its_ceiling_would_park_money_on_the_middle_one() -> None:
    """What the service did before (the window passed as floor and ceiling): the target stops at the window, so the
    money goes to the middle member, above where it belongs once the strong one can grow again."""
    windowed = plan(MemberState("strong", 25_000, window_min_cents=20_000, window_max_cents=25_000))
    narrowed = plan(MemberState("strong", 25_000, 20_000, 25_000))
    assert narrowed["strong"][1] == 25_000
    assert narrowed["middle"][1] is not None and windowed["middle"][1] is not None
    assert narrowed["middle"][1] > windowed["middle"][1] + 5_000
    assert narrowed["middle"][0] > windowed["middle"][0]


def test_a_window_never_lets_a_plan_move_a_member_beyond_it() -> None:
    lines = plan(MemberState("strong", 25_000, window_min_cents=24_000, window_max_cents=26_000))
    assert 24_000 <= lines["strong"][0] <= 26_000
