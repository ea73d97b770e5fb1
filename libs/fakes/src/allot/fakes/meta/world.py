"""The `make run` demo's Meta world: one EUR ad account in Berlin, a campaign, five ad sets with hidden response
profiles, a read-only and a write token (served by ``python -m allot.fakes.meta --demo``)."""

from __future__ import annotations

from datetime import timedelta

from allot.fakes.meta.graph import MetaFakeState
from allot.fakes.meta.market import AdSetProfile, MetaMarket

DEMO_ACCOUNT = "100000000001"
DEMO_ZONE = "Europe/Berlin"
DEMO_CAMPAIGN = "120000000000100"
#: ad set id → (name, starting daily budget in EUR cents, hidden profile)
DEMO_ADSETS: dict[str, tuple[str, int, AdSetProfile]] = {
    "120000000000101": ("Lookalike 1% (strong)", 5_000, AdSetProfile(roas=4.0, half_saturation=12_000)),
    "120000000000102": ("Broad (regular)", 5_000, AdSetProfile(roas=2.6, half_saturation=15_000)),
    "120000000000103": ("Interests (weak)", 5_000, AdSetProfile(roas=1.6, half_saturation=15_000)),
    "120000000000104": ("Retargeting (capped)", 5_000, AdSetProfile(roas=5.0, half_saturation=20_000, cap=3_500)),
    "120000000000105": ("Cold video (rules)", 8_000, AdSetProfile(roas=0.8, half_saturation=10_000)),
}
HISTORY = timedelta(days=7)


def demo_world(read_token: str, write_token: str, app_secret: str | None) -> tuple[MetaFakeState, MetaMarket]:
    """One EUR ad account in Berlin with a campaign and five ad sets, a read-only and a write token."""
    state = MetaFakeState(app_secret=app_secret or None)
    state.access_tokens |= {read_token, write_token}
    state.reads.grant(read_token, "ads_read", "read_insights")
    state.reads.grant(write_token, "ads_read", "ads_management")
    state.add_account(DEMO_ACCOUNT, "EUR", name="Allot demo shop (Graph fake)")
    state.reads.set_account(DEMO_ACCOUNT, timezone_name=DEMO_ZONE)
    state.add_object(DEMO_CAMPAIGN, "campaign", DEMO_ACCOUNT, name="Always on")
    for adset_id, (name, budget, _) in DEMO_ADSETS.items():
        state.add_object(adset_id, "adset", DEMO_ACCOUNT, name=name, daily_budget=budget, parent_id=DEMO_CAMPAIGN)
    market = MetaMarket(state, {adset_id: profile for adset_id, (_, _, profile) in DEMO_ADSETS.items()})
    return state, market
